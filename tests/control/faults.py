"""A fitted pipeline with faults put in, registered as a broken challenger by the tests.

It lives in an importable module (not a test file) because the server process unpickles
it from the registry. Faults hit only small batches (requests, not the load-time check
on the reference rows), so the version loads and then misbehaves on live traffic.
"""

from __future__ import annotations

import random
import time
from typing import Any

LOAD_CHECK_ROWS = 64


class InjectedFault(RuntimeError):
    pass


class Faulty:
    """Delegates to ``inner``; raises on ``error_rate`` of calls; each call takes
    ``slowdown`` times as long as the inner model's (5.0: five times the latency)."""

    def __init__(self, inner: Any, error_rate: float = 0.0, slowdown: float = 1.0,
                 hold_rows: int | None = None, hold_seconds: float = 0.0) -> None:
        self.inner = inner
        self.error_rate = error_rate
        self.slowdown = slowdown
        self.hold_rows = hold_rows
        """Calls on at least this many rows first sleep ``hold_seconds`` (a request that is
        sure to be in flight when a test looks)."""
        self.hold_seconds = hold_seconds

    def _call(self, method: str, X: Any) -> Any:
        if self.hold_rows is not None and len(X) >= self.hold_rows:
            time.sleep(self.hold_seconds)
        start = time.perf_counter()
        result = getattr(self.inner, method)(X)
        if len(X) >= LOAD_CHECK_ROWS:
            return result
        if self.slowdown > 1:  # proportional: a busy machine slows the champion too
            time.sleep((self.slowdown - 1) * (time.perf_counter() - start))
        if random.random() < self.error_rate:
            raise InjectedFault("injected fault")
        return result

    def predict_proba(self, X: Any) -> Any:
        return self._call("predict_proba", X)

    def predict(self, X: Any) -> Any:
        return self._call("predict", X)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
