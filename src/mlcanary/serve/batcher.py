"""Adaptive micro-batching: concurrent requests to one model merge into one predict call.

A single worker per model runs ``predict`` in a thread. While it runs, new requests
queue; when it returns, everything queued (up to ``max_batch_size`` rows) becomes the
next batch. So a lone client is never delayed (an idle worker takes its request at
once), and under load the batch grows with the load, with no fixed timer to tune.
``max_delay`` adds an optional wait for more rows after the first arrives.

One bad request never fails the others: if a merged batch raises, each request in it
is predicted on its own and only the failing ones get the error. The queue is
bounded in rows: past ``max_queue_rows`` a request is refused at once (503) rather
than waiting without limit.

A lone small request whose predict is known to be quick runs on the event loop itself:
handing it to the thread and back (a wake-up each way) cost a one-row request ~70 µs,
more than an ONNX model takes. The speed is learnt from the predict times of recent
small batches, so a slow runtime keeps its thread; and a batch of several requests (the
server under load) keeps it too, so that the loop goes on reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlcanary.errors import Unavailable
from mlcanary.models.runtime import Prediction

log = logging.getLogger(__name__)

Observer = Callable[[int, float], None]
"""Called after each predict with (rows in the batch, seconds the oldest request queued)."""


INLINE_ROWS = 16
"""A lone request of up to this many rows may run on the event loop (``inline_seconds``)."""


def concat_frames(parts: Sequence[Any]) -> Any:
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


@dataclass
class _Pending:
    rows: Any
    n: int
    future: asyncio.Future[Prediction]
    queued_at: float = field(default=0.0)


class Batcher:
    """Merge concurrent ``submit`` calls into batched ``predict`` calls."""

    def __init__(
        self,
        predict: Callable[[Any], Prediction],
        *,
        merge: Callable[[Sequence[Any]], Any] = concat_frames,
        size: Callable[[Any], int] = len,
        max_batch_size: int = 512,
        max_delay: float = 0.0,
        max_queue_rows: int = 20_000,
        observe: Observer | None = None,
        inline_seconds: float = 200e-6,
    ) -> None:
        self.predict = predict
        self.merge = merge
        self.size = size
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.max_queue_rows = max_queue_rows
        self.observe = observe
        self.inline_seconds = inline_seconds
        """A lone small request runs on the event loop while recent small predicts took less."""
        self._small_seconds: float | None = None
        """Moving average of the predict time of batches up to ``INLINE_ROWS`` rows."""
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, rows: Any) -> Prediction:
        """Queue ``rows`` (already validated) and wait for their share of a batch."""
        if self._worker is None or self._wakeup is None or self._closing:
            raise Unavailable("model: not accepting requests (starting or shutting down)")
        # A request larger than the whole queue is still taken when nothing else waits.
        n = self.size(rows)
        if self._queued_rows and self._queued_rows + n > self.max_queue_rows:
            raise Unavailable(
                f"model: overloaded ({self._queued_rows} rows queued, limit "
                f"{self.max_queue_rows}); retry later"
            )
        loop = asyncio.get_running_loop()
        pending = _Pending(rows, n, loop.create_future(), loop.time())
        self._queue.append(pending)
        self._queued_rows += n
        self._wakeup.set()
        return await pending.future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_delay > 0 and self._queued_rows < self.max_batch_size:
                await asyncio.sleep(self.max_delay)
            batch = self._take()
            waited = loop.time() - batch[0].queued_at
            await self._serve(batch)
            if self.observe is not None:
                self.observe(sum(p.n for p in batch), waited)

    def runs_inline(self) -> bool:
        """Whether a lone small request runs on the event loop rather than the thread."""
        return self._small_seconds is not None and self._small_seconds < self.inline_seconds

    def _timed(self, rows: Any) -> tuple[Prediction, float]:
        began = time.perf_counter()
        prediction = self.predict(rows)
        return prediction, time.perf_counter() - began

    def _take(self) -> list[_Pending]:
        """The oldest requests, up to ``max_batch_size`` rows (always at least one)."""
        batch = [self._queue.popleft()]
        size = batch[0].n
        while self._queue and size + self._queue[0].n <= self.max_batch_size:
            pending = self._queue.popleft()
            batch.append(pending)
            size += pending.n
        self._queued_rows -= size
        return batch

    async def _serve(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        live = [p for p in batch if not p.future.cancelled()]
        if not live:
            return
        try:
            merged = self.merge([p.rows for p in live])
            rows = sum(p.n for p in live)
            if len(live) == 1 and rows <= INLINE_ROWS and self.runs_inline():
                prediction, seconds = self._timed(merged)
            else:
                prediction, seconds = await loop.run_in_executor(
                    self._executor, self._timed, merged
                )
            if rows <= INLINE_ROWS:
                last = self._small_seconds
                self._small_seconds = seconds if last is None else 0.8 * last + 0.2 * seconds
        except Exception as exc:
            if len(live) == 1:
                if not live[0].future.done():
                    live[0].future.set_exception(exc)
                return
            log.warning("a batch of %d requests failed; predicting them one by one", len(live))
            for pending in live:
                await self._serve([pending])
            return
        start = 0
        for pending in live:
            stop = start + pending.n
            part = Prediction(
                prediction.predicted[start:stop],
                None if prediction.proba is None else prediction.proba[start:stop],
            )
            if not pending.future.done():
                pending.future.set_result(part)
            start = stop
