"""The tap: hands answered requests to the prediction log without slowing the answer.

``put`` runs on the request path, so it does almost nothing: a length check and a
``deque.append`` (atomic under the GIL; no lock, no JSON). Sampling is decided before
that, from the request id alone (``sampled``), so an unsampled request builds no record.
A writer thread takes what has queued every ``flush_seconds``, or sooner once
``batch_size`` records wait, and writes it in one transaction.

Memory is bounded: ``capacity`` counts records queued and records being written. Past
it (database slow or down) ``put`` drops the record and counts the drop, per model;
nothing blocks. A failed write keeps its records and is retried with exponential backoff
(``RETRY_FIRST_SECONDS``, doubling, at most ``flush_seconds`` apart), so a blip costs a
fraction of a second, an outage is not hammered, and one shorter than the buffer loses
nothing. ``close`` writes what is left.

Loss bound: a record is written at most ``flush_seconds`` (plus one write) after
``put``; a killed process loses at most that much, a clean shutdown nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence

from mlcanary.store.records import PredictionRecord

log = logging.getLogger(__name__)

Writer = Callable[[Sequence[PredictionRecord]], object]
"""Writes one batch, all or nothing, or raises (``Store.write_predictions``)."""

_HASH_SPACE = float(2**64)

RETRY_FIRST_SECONDS = 0.05
"""The wait before the first retry of a failed write; each further failure doubles it."""


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is in the sample: a hash, so every replica agrees on it.

    The same id is kept (or not) wherever it is seen, e.g. both copies of a shadowed
    request, which a seeded random draw per process could not promise.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _HASH_SPACE


class PredictionTap:
    """A bounded, non-blocking queue of prediction records with a writer thread."""

    def __init__(
        self,
        write: Writer,
        *,
        capacity: int = 100_000,
        flush_seconds: float = 1.0,
        batch_size: int = 500,
        sample_rate: float = 1.0,
        models: Iterable[str] = (),
    ) -> None:
        self.write = write
        self.capacity = capacity
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.sample_rate = sample_rate
        self.dropped: Counter[str] = Counter({model: 0 for model in models})
        """Records refused because the buffer was full, by model (``models`` start at 0)."""
        self.written: Counter[str] = Counter({model: 0 for model in models})
        """Records handed to the writer successfully, by model."""
        self.failures = 0
        """Writes that raised (each is retried)."""
        self._queue: deque[PredictionRecord] = deque()
        self._taken: list[PredictionRecord] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._last_complaint = 0.0

    @property
    def depth(self) -> int:
        """Records held in memory: queued plus being written."""
        return len(self._queue) + len(self._taken)

    def start(self) -> PredictionTap:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def sampled(self, request_id: str) -> bool:
        """Whether a request with this id is to be logged (check before building a record)."""
        return sampled(request_id, self.sample_rate)

    def put(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for the log; False if the buffer is full (the drop is counted).

        Never blocks and never raises: the request that produced the record has
        already been answered. Sampling is the caller's (``sampled``), so an unsampled
        request costs no record at all.
        """
        queued = len(self._queue)
        if queued + len(self._taken) >= self.capacity:
            self.dropped[record.model] += 1
            return False
        self._queue.append(record)
        if queued + 1 >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def flush(self) -> bool:
        """Write what is queued now, from any thread; False if a write failed.

        Records queued while it writes wait for the next flush, so a caller (the
        feedback endpoint) waits for at most what was there when it asked.
        """
        with self._lock:
            left = len(self._queue)
            while True:
                if not self._taken:
                    self._taken = self._take(min(left, self.batch_size))
                    left -= len(self._taken)
                if not self._taken:
                    return True
                if not self._write(self._taken):
                    return False
                self._taken = []

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer and write what is left, retrying for up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + timeout
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(min(self.flush_seconds, 0.5))
        while self._queue and self.flush():  # what came in while the last write ran
            pass
        if self.depth:
            log.error(
                "prediction log: %d record(s) could not be written before shutdown; lost",
                self.depth,
            )

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            if not backoff:  # healthy: wait for a tick or a full batch
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                if self._stop.is_set():
                    return
            if self.flush():
                backoff = 0.0
                continue
            # failing: back off before the next try, however full the queue
            backoff = min(self.flush_seconds, max(RETRY_FIRST_SECONDS, 2 * backoff))
            self._stop.wait(backoff)

    def _take(self, n: int) -> list[PredictionRecord]:
        return [self._queue.popleft() for _ in range(n)]

    def _write(self, batch: list[PredictionRecord]) -> bool:
        try:
            self.write(batch)
        except Exception as exc:
            self.failures += 1
            self._complain(exc, len(batch))
            return False
        if self._failing_since is not None:
            log.warning(
                "prediction log: writing again after %.1f s of failures (%d dropped so far)",
                time.monotonic() - self._failing_since,
                sum(self.dropped.values()),
            )
            self._failing_since = None
        for record in batch:
            self.written[record.model] += 1
        return True

    def _complain(self, exc: Exception, records: int) -> None:
        """Log the first failure, then at most once a minute while failures go on."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._last_complaint < 60:
            return
        self._last_complaint = now
        log.error(
            "prediction log: a write of %d record(s) failed (%s: %s); kept, retrying with "
            "backoff up to every %.1f s while the buffer has room (%d held, capacity %d)",
            records,
            type(exc).__name__,
            exc,
            self.flush_seconds,
            self.depth,
            self.capacity,
        )
