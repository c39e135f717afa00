"""The tap over a real SQLite store: nothing lost, drops counted, never blocking, sampling."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcanary.monitor.tap import PredictionTap, sampled
from mlcanary.store.database import Store
from tests.store.test_database import record
from tests.waiting import wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'store.db'}", busy_timeout_ms=100) as opened:
        yield opened




def test_close_writes_everything_still_buffered(store: Store) -> None:
    tap = PredictionTap(store.write_predictions, flush_seconds=60, batch_size=1000).start()
    for i in range(5000):
        assert tap.put(record(f"r{i}"))
    assert store.count("churn") < 5000  # most of it still in memory
    tap.close()
    assert store.count("churn") == 5000
    assert tap.written["churn"] == 5000 and tap.depth == 0


def test_the_writer_flushes_every_interval_without_being_asked(store: Store) -> None:
    tap = PredictionTap(store.write_predictions, flush_seconds=0.1).start()
    try:
        for i in range(50):
            tap.put(record(f"r{i}"))
        wait_until(lambda: store.count("churn") == 50, timeout=30)
    finally:
        tap.close()


def test_a_full_batch_is_written_before_the_interval(store: Store) -> None:
    tap = PredictionTap(store.write_predictions, flush_seconds=600, batch_size=100).start()
    try:
        for i in range(250):
            tap.put(record(f"r{i}"))
        # The interval is 600 s: only a full batch wakes the writer within this wait. It
        # writes what is queued when it wakes (a batch or more), so what is left in the end
        # is less than a batch, however the writer and the puts interleave.
        wait_until(lambda: (written := store.count("churn")) >= 100 and tap.depth < 100
                   and written + tap.depth == 250, timeout=60,
                   what="every full batch written, less than one left in memory")
    finally:
        tap.close()


def test_records_past_capacity_are_dropped_and_counted(store: Store) -> None:
    tap = PredictionTap(
        store.write_predictions, capacity=100, flush_seconds=600, models=["churn", "fraud"]
    ).start()
    accepted = [tap.put(record(f"r{i}")) for i in range(130)]
    assert accepted == [True] * 100 + [False] * 30
    assert tap.put(record("f", model="fraud")) is False
    assert tap.dropped == {"churn": 30, "fraud": 1}
    assert tap.depth == 100
    tap.close()
    assert store.count("churn") == 100 and tap.written == {"churn": 100, "fraud": 0}


def test_a_failed_write_keeps_its_records_and_is_retried(store: Store, tmp_path: Path) -> None:
    # Another process holding the write lock: the tap's writes fail after the busy timeout.
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    tap = PredictionTap(store.write_predictions, capacity=1000, flush_seconds=0.05).start()
    try:
        for i in range(40):
            tap.put(record(f"r{i}"))
        wait_until(lambda: tap.failures >= 2)
        assert tap.written["churn"] == 0 and tap.depth == 40  # kept, not lost
        assert tap.flush() is False
        blocker.execute("ROLLBACK")
        wait_until(lambda: tap.written["churn"] == 40)
        assert store.count("churn") == 40 and tap.depth == 0
    finally:
        blocker.close()
        tap.close()


def test_a_failed_write_is_retried_soon_not_after_a_whole_interval(
    store: Store, tmp_path: Path
) -> None:
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    tap = PredictionTap(store.write_predictions, flush_seconds=600, batch_size=10).start()
    try:
        for i in range(10):
            tap.put(record(f"r{i}"))  # a full batch wakes the writer; its write fails
        wait_until(lambda: tap.failures >= 1)
        blocker.execute("ROLLBACK")
        # the interval is 600 s: only a retry with backoff can write within this wait
        wait_until(lambda: tap.written["churn"] == 10, timeout=60)
        assert tap.failures < 20  # backed off, not spinning
    finally:
        blocker.close()
        tap.close()


def test_put_never_blocks_while_the_writer_is_stuck(store: Store, tmp_path: Path) -> None:
    slow = Store(store.url, busy_timeout_ms=3000)  # a write waits 3 s for the lock
    blocker = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    tap = PredictionTap(slow.write_predictions, capacity=5_000, flush_seconds=0.01).start()
    try:
        tap.put(record("first"))
        wait_until(lambda: tap.depth == 1 and not tap._queue)  # taken: the writer is waiting
        records = [record(f"r{i}") for i in range(10_000)]
        start = time.perf_counter()
        accepted = sum(tap.put(r) for r in records)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.5, f"10,000 puts took {elapsed:.3f} s while the writer was stuck"
        assert accepted == 4_999 and tap.dropped["churn"] == 5_001
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        tap.close()
        slow.close()
    assert store.count("churn") == 5_000


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.9])
def test_sampling_keeps_the_requested_share_by_request_id(rate: float) -> None:
    n = 20_000
    kept = sum(sampled(f"req-{i}", rate) for i in range(n))
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(kept - n * rate) < 5 * sigma, (kept, n * rate, sigma)  # binomial, 5 sigma
    assert all(sampled(f"req-{i}", rate) == sampled(f"req-{i}", rate) for i in range(100))


def test_sampling_edges_keep_all_or_nothing() -> None:
    assert all(sampled(f"{i}", 1.0) for i in range(1000))
    assert not any(sampled(f"{i}", 0.0) for i in range(1000))
    tap = PredictionTap(lambda batch: None, sample_rate=0.5)
    assert tap.sampled("abc") == sampled("abc", 0.5)
