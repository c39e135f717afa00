"""Waiting on a condition with a deadline: the suite's one way to let time pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], timeout: float = 60.0, what: str = "the condition", poll: float = 0.05
) -> T:
    """Call ``check`` until it returns something truthy and return that; fail at the deadline.

    The deadline is generous because a loaded two-core machine is slow, and costs nothing
    when the condition holds early. The failure names ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
