"""Traffic counts per model, variant and version: requests, server errors, latency.

The prediction log holds answered requests only; a rollout's gates also need the
requests that failed and the latency distribution of each variant. The server counts
them in memory (a dictionary update per request, on the event loop) and writes the
counts of each period to the store's ``traffic`` table, so the controller sees every
replica's traffic and no request waits for a write.
"""

from __future__ import annotations

import bisect
import time

from mlcanary.store.traffic import LATENCY_EDGES_MS, Counts, Key

WARMUP_SECONDS = 10.0
"""Requests that arrive this soon after a server starts serving are counted (requests,
errors) but their latency is not: a restarted server answers its first burst of queued
requests cold, whichever variant they were routed to."""

class TrafficCounter:
    """In-memory counts since the last ``drain``; only the event loop writes them.

    ``warmup_seconds``: latencies of requests that arrived this soon after ``begin``
    (the server starting to serve) are left out of the latency counts; before any
    ``begin`` every latency counts.
    """

    def __init__(self, warmup_seconds: float = 0.0) -> None:
        self.counts: dict[Key, Counts] = {}
        self.warmup_seconds = warmup_seconds
        self.warm_after = float("-inf")

    def begin(self) -> None:
        """The server starts serving now: its warm-up runs from here."""
        self.warm_after = time.monotonic() + self.warmup_seconds

    def record(
        self, model: str, variant: str, version: int, seconds: float, error: bool, epoch: int = 0
    ) -> None:
        key = (model, variant, version, epoch)
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = Counts()
        counts.requests += 1
        counts.errors += error
        if time.monotonic() - seconds >= self.warm_after:
            counts.latency[bisect.bisect_left(LATENCY_EDGES_MS, seconds * 1000)] += 1

    def drain(self) -> dict[Key, Counts]:
        counts, self.counts = self.counts, {}
        return counts
