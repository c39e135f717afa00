"""Traffic counts in the store: requests, server errors and a latency histogram per model,
variant, version and rollout epoch, one row per serving process and period, so the
controller sees every replica's traffic.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson
from sqlalchemy import and_, func, select

from mlcanary.store.database import Store
from mlcanary.store.schema import log_stats, traffic

LATENCY_EDGES_MS = tuple(round(0.1 * 2 ** (k / 4), 4) for k in range(81))
"""Upper edges of the latency buckets, 0.1 ms to 105 s, four to an octave (each 19%
wider than the one before); a last bucket holds everything slower. Quantiles are
interpolated within a bucket, so a p99 is off by a few percent, not by a bucket's width
(with 1-2-5 edges anything in 5-10 ms read as 10 ms)."""

Key = tuple[str, str, int, int]
"""(model, variant, version, rollout epoch)."""


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_ms(self, q: float) -> float | None:
        """Quantile ``q`` of the latency, interpolated linearly within its bucket; None
        without latencies, inf when it lies beyond the last edge.

        >>> c = Counts(); c.latency[10] = 100  # 100 requests in (0.476 ms, 0.566 ms]
        >>> round(c.quantile_ms(0.5), 4)
        0.5207
        """
        counts = np.asarray(self.latency, dtype=float)
        total = counts.sum()
        if total == 0:
            return None
        cumulative = np.cumsum(counts)
        index = int(np.searchsorted(cumulative, q * total))
        if index >= len(LATENCY_EDGES_MS):
            return float("inf")
        low = LATENCY_EDGES_MS[index - 1] if index > 0 else 0.0
        before = cumulative[index] - counts[index]
        share = (q * total - before) / counts[index] if counts[index] else 1.0
        return float(low + min(max(share, 0.0), 1.0) * (LATENCY_EDGES_MS[index] - low))

    def count_above(self, ms: float) -> float:
        """Timed requests slower than ``ms``, interpolated linearly within its bucket as
        ``quantile_ms`` is (so the count above a quantile q is (1 - q) of the total).

        >>> c = Counts(); c.latency[10] = 100  # 100 requests in (0.476 ms, 0.566 ms]
        >>> round(c.count_above(c.quantile_ms(0.9)), 6)
        10.0
        """
        counts = np.asarray(self.latency, dtype=float)
        index = bisect.bisect_left(LATENCY_EDGES_MS, ms)
        if index >= len(LATENCY_EDGES_MS):  # beyond the last edge: the open bucket
            return float(counts[-1])
        low = LATENCY_EDGES_MS[index - 1] if index > 0 else 0.0
        share = (LATENCY_EDGES_MS[index] - ms) / (LATENCY_EDGES_MS[index] - low)
        return float(counts[index + 1:].sum()) + float(counts[index]) * min(max(share, 0.0), 1.0)


class TrafficLog:
    """Writes and sums ``traffic`` rows."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, counts: dict[Key, Counts], ts: float | None = None) -> None:
        if not counts:
            return
        ts = time.time() if ts is None else ts
        rows = [
            {
                "ts": ts, "model": model, "variant": variant, "version": version,
                "epoch": epoch, "requests": c.requests, "errors": c.errors,
                "latency": orjson.dumps(c.latency).decode(),
            }
            for (model, variant, version, epoch), c in counts.items()
        ]
        with self.store._write() as conn:
            conn.execute(traffic.insert(), rows)

    def write_log_stats(
        self, process: str, written: dict[str, int], dropped: dict[str, int]
    ) -> None:
        """This process's prediction-log counters so far (one row per model, replaced)."""
        rows = [
            {"process": process, "model": model, "ts": time.time(),
             "written": int(written.get(model, 0)), "dropped": int(dropped.get(model, 0))}
            for model in sorted(set(written) | set(dropped))
        ]
        if not rows:
            return
        insert = self.store._insert(log_stats)
        upsert = insert.on_conflict_do_update(
            index_elements=["process", "model"],
            set_={"ts": insert.excluded.ts, "written": insert.excluded.written,
                  "dropped": insert.excluded.dropped},
        )
        with self.store._write() as conn:
            conn.execute(upsert, rows)

    def log_totals(self, model: str) -> tuple[int, int]:
        """(written, dropped) by every serving process that logged ``model``."""
        query = select(func.coalesce(func.sum(log_stats.c.written), 0),
                       func.coalesce(func.sum(log_stats.c.dropped), 0)).where(
            log_stats.c.model == model)
        with self.store._read() as conn:
            written, dropped = conn.execute(query).one()
        return int(written), int(dropped)

    def totals(
        self, model: str, since: float, until: float, epoch: int | None = None
    ) -> dict[tuple[str, int], Counts]:
        """Counts per (variant, version) written in ``[since, until)`` (of one epoch)."""
        query = select(
            traffic.c.variant, traffic.c.version, traffic.c.requests, traffic.c.errors,
            traffic.c.latency,
        ).where(and_(traffic.c.model == model, traffic.c.ts >= since, traffic.c.ts < until))
        if epoch is not None:
            query = query.where(traffic.c.epoch == epoch)
        with self.store._read() as conn:
            rows: Iterable[tuple[str, int, int, int, str]] = conn.execute(query).all()
        out: dict[tuple[str, int], Counts] = {}
        buckets = len(LATENCY_EDGES_MS) + 1
        for variant, version, requests, errors, latency in rows:
            counts = Counts(int(requests), int(errors))
            found = list(orjson.loads(latency))
            if len(found) == buckets:  # rows written with other edges count without latency
                counts.latency = found
            out.setdefault((variant, int(version)), Counts()).add(counts)
        return out
