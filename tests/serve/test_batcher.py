"""The batcher merges concurrent requests, never delays a lone one, and isolates failures."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
import pytest

from mlcanary.errors import Unavailable
from mlcanary.serve.batcher import Batcher
from mlcanary.serve.runtime import Prediction


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
