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
    """Delegates to ``inner``; raises on ``error_rate`` of calls, sleeps ``delay_s`` each."""

    def __init__(self, inner: Any, error_rate: float = 0.0, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.error_rate = error_rate
        self.delay_s = delay_s

    def _fault(self, X: Any) -> None:
        if len(X) >= LOAD_CHECK_ROWS:
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        if random.random() < self.error_rate:
            raise InjectedFault("injected fault")

    def predict_proba(self, X: Any) -> Any:
        self._fault(X)
        return self.inner.predict_proba(X)

    def predict(self, X: Any) -> Any:
        self._fault(X)
        return self.inner.predict(X)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
