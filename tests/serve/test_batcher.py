"""The batcher merges concurrent requests, never delays a lone one, and isolates failures."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pandas as pd
import pytest

from mlcanary.errors import Unavailable
from mlcanary.models.runtime import Prediction
from mlcanary.serve.batcher import Batcher


class Recorder:
    """A predictor that echoes each row's id, records batch sizes, and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, rows: pd.DataFrame) -> Prediction:
        self.entered.set()
        self.release.wait(timeout=10)
        ids = rows["id"].tolist()
        if any(i < 0 for i in ids):
            raise ValueError("negative id")
        self.batches.append(ids)
        values = np.asarray(ids, dtype=np.int64)
        return Prediction(values, np.column_stack([values, -values]).astype(float))


def frame(*ids: int) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids)})


async def occupied(batcher: Batcher, recorder: Recorder) -> asyncio.Future[Prediction]:
    """Hold the predictor inside a first one-row batch; return that request's future."""
    recorder.release.clear()
    first = asyncio.ensure_future(batcher.submit(frame(0)))
    await asyncio.get_running_loop().run_in_executor(None, recorder.entered.wait)
    return first


async def started(recorder: Recorder, **options: int) -> Batcher:
    batcher = Batcher(recorder, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher


def test_a_lone_request_is_predicted_on_its_own_at_once() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder)
        result = await batcher.submit(frame(7, 8))
        assert recorder.batches == [[7, 8]]
        assert result.predicted.tolist() == [7, 8]
        await batcher.stop()

    asyncio.run(scenario())


def test_requests_queued_while_busy_merge_and_split_back() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder)
        first = await occupied(batcher, recorder)
        rest = [asyncio.ensure_future(batcher.submit(frame(i, i + 1000))) for i in range(1, 41)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        results = await asyncio.gather(first, *rest)
        assert recorder.batches[0] == [0]
        assert len(recorder.batches) == 2 and len(recorder.batches[1]) == 80
        for i, result in enumerate(results[1:], start=1):
            assert result.predicted.tolist() == [i, i + 1000]
            assert result.proba is not None and result.proba[:, 1].tolist() == [-i, -i - 1000]
        await batcher.stop()

    asyncio.run(scenario())


def test_max_batch_size_caps_each_batch() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder, max_batch_size=10)
        first = await occupied(batcher, recorder)
        rest = [asyncio.ensure_future(batcher.submit(frame(i, i, i))) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        await asyncio.gather(first, *rest)
        assert all(len(b) <= 10 for b in recorder.batches)
        assert sum(len(b) for b in recorder.batches) == 31
        await batcher.stop()

    asyncio.run(scenario())


def test_one_bad_request_does_not_fail_its_batch() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder)
        first = await occupied(batcher, recorder)
        good = [asyncio.ensure_future(batcher.submit(frame(i))) for i in (1, 2, 3)]
        bad = asyncio.ensure_future(batcher.submit(frame(-1)))
        await asyncio.sleep(0.05)
        recorder.release.set()
        assert [r.predicted.tolist() for r in await asyncio.gather(first, *good)] == [
            [0],
            [1],
            [2],
            [3],
        ]
        with pytest.raises(ValueError, match="negative id"):
            await bad
        await batcher.stop()

    asyncio.run(scenario())


def test_a_full_queue_refuses_instead_of_waiting() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder, max_queue_rows=5)
        first = await occupied(batcher, recorder)
        queued = asyncio.ensure_future(batcher.submit(frame(1, 2, 3, 4, 5)))
        await asyncio.sleep(0.01)
        with pytest.raises(Unavailable, match="overloaded"):
            await batcher.submit(frame(6))
        recorder.release.set()
        await asyncio.gather(first, queued)
        await batcher.stop()

    asyncio.run(scenario())


def test_a_request_larger_than_the_queue_is_taken_when_nothing_waits() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder, max_queue_rows=2)
        result = await batcher.submit(frame(1, 2, 3, 4))
        assert result.predicted.tolist() == [1, 2, 3, 4]
        await batcher.stop()

    asyncio.run(scenario())


def test_stop_finishes_queued_work_then_refuses() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = await started(recorder)
        pending = [asyncio.ensure_future(batcher.submit(frame(i))) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.stop()
        assert sorted(r.predicted[0] for r in await asyncio.gather(*pending)) == [0, 1, 2, 3, 4]
        with pytest.raises(Unavailable):
            await batcher.submit(frame(9))

    asyncio.run(scenario())


class Threads:
    """A predictor that notes the thread each batch ran on; ``pause`` seconds each."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.calls: list[tuple[int, int]] = []  # (thread id, rows)

    def __call__(self, rows: pd.DataFrame) -> Prediction:
        if self.pause:
            time.sleep(self.pause)
        self.calls.append((threading.get_ident(), len(rows)))
        values = np.zeros(len(rows), dtype=np.int64)
        return Prediction(values, None)


def on_loop(predictor: Threads, requests: list[pd.DataFrame]) -> list[bool]:
    """Submit one request after another; for each batch, whether it ran on the loop."""

    async def scenario() -> int:
        batcher = Batcher(predictor)
        batcher.start()
        for rows in requests:
            await batcher.submit(rows)
        await batcher.stop()
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    return [thread == loop_thread for thread, _ in predictor.calls]


def test_a_quick_lone_request_runs_on_the_event_loop_once_its_speed_is_known() -> None:
    inline = on_loop(Threads(), [frame(i) for i in range(30)])
    assert inline[0] is False  # no predict time known yet: the thread
    assert any(inline[1:])  # ~µs a call, far under the 200 µs a hand-off may cost


def test_a_slow_predict_a_large_request_and_merged_requests_keep_the_thread() -> None:
    assert not any(on_loop(Threads(pause=0.002), [frame(i) for i in range(6)]))
    quick = Threads()
    inline = on_loop(quick, [frame(i) for i in range(20)] + [frame(*range(17))])
    assert any(inline[:-1]) and quick.calls[-1][1] == 17 and inline[-1] is False

    async def merged() -> int:  # quick and small, but two requests in one batch
        predictor = Threads()
        batcher = Batcher(predictor, inline_seconds=1.0)  # any predict counts as quick
        batcher.start()
        await batcher.submit(frame(0))
        assert batcher.runs_inline()
        predictor.calls.clear()
        await asyncio.gather(batcher.submit(frame(1)), batcher.submit(frame(2)))
        await batcher.stop()
        assert [rows for _, rows in predictor.calls] == [2]
        return predictor.calls[0][0]

    assert asyncio.run(merged()) != threading.main_thread().ident
