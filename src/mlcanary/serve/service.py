"""The inference service: every transport's one way in (the role of MLServer's DataPlane).

A transport decodes its wire format into an ``Inference`` (a model name, input tensors,
an optional version, request id and assignment key), awaits ``InferenceService.infer``
and encodes the ``Answer``. Everything between is here, once: which variant answers
(the rollout's sticky split), validation against that version's signature, the batcher,
the prediction, the hand-over to the prediction log's tap, the shadow copy, and the
per-variant traffic counts the rollout gates read. Nothing here knows HTTP: the V2 and V1
REST routes (``serve/app.py``) are adapters over it, and so can a stream consumer or a
replica of another framework be.

``start``/``stop`` run the service's background work for its lifetime: batchers, the alias
watcher (hot swap and rollout routing), the tap, traffic flushes and retention purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlcanary.config import Settings
from mlcanary.control.status import status_document
from mlcanary.errors import InvalidInput, MlcanaryError, Unavailable
from mlcanary.models.runtime import Prediction
from mlcanary.monitor.tap import PredictionTap
from mlcanary.monitor.traffic import WARMUP_SECONDS, TrafficCounter
from mlcanary.serve.batcher import Batcher
from mlcanary.serve.metrics import ServerMetrics
from mlcanary.serve.outputs import outputs_for
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.router import Router
from mlcanary.serve.swap import AliasWatcher
from mlcanary.serve.tensors import Tensor
from mlcanary.serve.validation import columns_from_tensors, merge_columns, row_count
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.feedback import FeedbackResult, parse_feedback
from mlcanary.store.records import PredictionRecord
from mlcanary.store.traffic import TrafficLog
from mlcanary.types import SHADOW_VARIANT

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Inference:
    """One inference request, as any transport decoded it."""

    model: str
    inputs: Sequence[Tensor]
    version: str | None = None
    """A version the caller chose (it then bypasses the rollout's split)."""
    id: str | None = None
    """The caller's request id; the service makes one when there is none."""
    key: str | None = None
    """The assignment key (HTTP: the ``X-Mlcanary-Key`` header): one key, one variant."""
    started: float = field(default_factory=time.perf_counter)
    """When the transport received it (``time.perf_counter``): latency counts from here."""


@dataclass(slots=True)
class Answer:
    """What the service answered: the prediction and who made it."""

    model: str
    version: int
    id: str
    variant: str
    prediction: Prediction
    signature: Signature

    def outputs(self) -> list[Tensor]:
        """Every output tensor: ``predict`` and, for classifiers, ``probabilities``."""
        return outputs_for(self.signature, self.prediction.proba, self.prediction.predicted)


class InferenceService:
    """Routing, validation, batching, prediction, logging and traffic counts for one
    repository of models; ``start`` it inside a running event loop and ``stop`` it there."""

    def __init__(
        self,
        settings: Settings,
        repository: ModelRepository,
        metrics: ServerMetrics | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics or ServerMetrics()
        self.store = store
        self.router = Router(store)
        self.counter = TrafficCounter(warmup_seconds=WARMUP_SECONDS)
        self.tap: PredictionTap | None = None
        if store is not None and settings.log_sample_rate > 0:
            self.tap = PredictionTap(
                store.write_predictions,
                capacity=settings.log_buffer_records,
                flush_seconds=settings.log_flush_seconds,
                sample_rate=settings.log_sample_rate,
                models=repository.names,
            )
            self.metrics.watch_prediction_log(self.tap)
        if store is not None:
            self.metrics.watch_signals(store, repository.names)
        for model in repository.models.values():
            self._loaded(model)
        self._tasks: list[asyncio.Task[None]] = []
        self._shadows: set[asyncio.Task[None]] = set()
        self._process = ""

    # -- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the batchers and the background work (in the running event loop)."""
        # Imports and models leave millions of long-lived objects; without this, every
        # full collection walks them all (a pause of ~100 ms, seen as p99 latency).
        gc.collect()
        gc.freeze()
        self.counter.begin()
        for model in self.repository.models.values():
            model.batcher = self._batcher(model)
            model.batcher.start()
        loop = asyncio.get_running_loop()
        store, settings = self.store, self.settings
        if settings.poll_seconds > 0:
            swaps = AliasWatcher(self.repository, self._batcher, settings.poll_seconds,
                                 self._loaded, router=self.router)
            if store is not None:  # a (re)started server routes a running rollout at once
                await asyncio.to_thread(_open_store, store)
                await swaps.poll()
            self._tasks.append(loop.create_task(swaps.run()))
        if store is not None and self.tap is not None:
            await asyncio.to_thread(_open_store, store)
            self.tap.start()
        self._process = process_name()  # at start: each worker process names its own rows
        if store is not None:
            self._tasks.append(loop.create_task(self._flush_traffic_forever(store)))
            if settings.retention_days is not None:
                self._tasks.append(loop.create_task(_purge_forever(store, settings.retention_days)))

    async def stop(self) -> None:
        """Stop background work, answer what is queued, write what the tap holds."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        served = [*self.repository.models.values(), *self.repository.challengers.values()]
        for model in served:  # drain: queued requests are answered
            if model.batcher is not None:
                await model.batcher.stop()
        if self.tap is not None:  # after the drain: every answered request has been put
            await asyncio.to_thread(self.tap.close)
        if self.store is not None:
            await asyncio.to_thread(self._write_traffic, self.store)
            self.store.close()

    def ready(self) -> bool:
        """Every named model has a loaded champion."""
        return len(self.repository.models) == len(self.repository.names)

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """A loaded version (the champion without ``version``); ``NotFound`` otherwise."""
        return self.repository.get(name, version)

    # -- inference ------------------------------------------------------------------------

    async def infer(self, request: Inference) -> Answer:
        """Answer one request: pick the variant, validate, predict, log, mirror, count.

        Raises ``InvalidInput`` for a request the signature refuses, ``NotFound`` for an
        unknown model or version, ``Unavailable`` when the model is not ready.
        """
        request_id = request.id or new_request_id()
        variant, model, key, epoch = self._pick(request, request_id)
        failed = True
        try:
            with model.held():
                rows = columns_from_tensors(request.inputs, model.signature,
                                            self.settings.unseen_categories)
                prediction = await _predict(model, rows)
            failed = False
        except MlcanaryError as exc:
            failed = isinstance(exc, Unavailable)  # a refused input is the client's fault
            raise
        finally:
            self.counter.record(model.name, variant, model.version,
                                time.perf_counter() - request.started, failed, epoch)
        self._log(model, request_id, rows, prediction, request.started, variant)
        self._mirror(model.name, key, request.inputs, request_id)
        return Answer(model.name, model.version, request_id, variant, prediction,
                      model.signature)

    def _pick(self, request: Inference, request_id: str) -> tuple[str, ServedModel, str, int]:
        """The variant that answers, its loaded version, the assignment key and the epoch.

        No await between here and ``held()``: a swap cannot retire the version in between.
        """
        name, repository = request.model, self.repository
        if request.version is not None:  # the caller chose the version
            model = repository.get(name, request.version)
            chosen = "challenger" if model is repository.challengers.get(name) else "champion"
            return chosen, model, request_id, 0
        champion = repository.get(name)
        challenger = repository.challengers.get(name)
        epoch = self.router.epoch(name, champion.version,
                                  challenger.version if challenger else None)
        key = self.router.key(name, request.key, request.inputs, request_id)
        if epoch and challenger is not None and self.router.choose(name, key) == "challenger":
            return "challenger", challenger, key, epoch
        return "champion", champion, key, epoch

    def _mirror(self, name: str, key: str, inputs: Sequence[Tensor], request_id: str) -> None:
        """Shadow: a copy of the request for the challenger, answered to nobody."""
        challenger = self.repository.challengers.get(name)
        if challenger is None or not self.router.shadow(name, key):
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(challenger, inputs, f"{request_id}:shadow"))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, model: ServedModel, inputs: Sequence[Tensor], request_id: str) -> None:
        start = time.perf_counter()
        try:
            with model.held():
                rows = columns_from_tensors(inputs, model.signature,
                                            self.settings.unseen_categories)
                prediction = await _predict(model, rows)
        except Exception as exc:  # its failure is the challenger's record, not the client's
            self.counter.record(model.name, SHADOW_VARIANT, model.version,
                                time.perf_counter() - start, not isinstance(exc, InvalidInput))
            return
        self.counter.record(model.name, SHADOW_VARIANT, model.version,
                            time.perf_counter() - start, False)
        self._log(model, request_id, rows, prediction, start, SHADOW_VARIANT)

    def _log(self, model: ServedModel, request_id: str, rows: Any, prediction: Prediction,
             start: float, variant: str) -> None:
        """Hand the answered request to the tap: a few attribute stores, no encoding."""
        tap = self.tap
        if tap is None or not tap.sampled(request_id):
            return
        tap.put(PredictionRecord(
            request_id, time.time(), model.name, model.version, rows, prediction.predicted,
            prediction.proba, model.signature.classes, (time.perf_counter() - start) * 1000,
            variant,
        ))

    # -- feedback and status --------------------------------------------------------------

    async def feedback(self, name: str, document: Any) -> FeedbackResult:
        """Labels for logged predictions (``[{"id": ..., "label": ...}, ...]``), joined in
        the store; ``Unavailable`` without one."""
        name = self.model(name).name
        store = self.store
        if store is None:
            raise Unavailable("feedback: this server has no prediction log store")
        items = parse_feedback(document)
        tap = self.tap

        def join() -> FeedbackResult:
            # A label may follow its prediction within one flush interval: write what
            # this process still holds first, so it is not reported unknown.
            if tap is not None:
                tap.flush()
            return store.add_feedback(name, items)

        return await asyncio.to_thread(join)

    async def status(self, name: str, last: int, policies: Any = None) -> dict[str, Any]:
        """The monitor's signals for a served model (``mlcanary status NAME --json``)."""
        name = self.model(name).name
        store = self.store
        if store is None:
            raise Unavailable("monitor: this server has no prediction log store")
        return await asyncio.to_thread(status_document, store, name, last=last,
                                       policies=policies)

    # -- parts ----------------------------------------------------------------------------

    def _batcher(self, model: ServedModel) -> Batcher:
        settings = self.settings
        return Batcher(
            model.runtime.predict,
            merge=merge_columns,
            size=row_count,
            max_batch_size=settings.max_batch_size,
            max_delay=settings.max_batch_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
            observe=self.metrics.observer(model.name),
        )

    def _loaded(self, model: ServedModel) -> None:
        self.metrics.load_seconds.labels(model.name, str(model.version)).set(model.load_seconds)

    async def _flush_traffic_forever(self, store: Store) -> None:
        """Write each period's request counts for the rollout gates (every flush interval)."""
        while True:
            await asyncio.sleep(self.settings.log_flush_seconds)
            await asyncio.to_thread(self._write_traffic, store)

    def _write_traffic(self, store: Store) -> None:
        counts = self.counter.drain()
        try:
            TrafficLog(store).write(counts)
            if self.tap is not None:  # so that `mlcanary status` can say what was dropped
                TrafficLog(store).write_log_stats(
                    self._process, dict(self.tap.written), dict(self.tap.dropped))
        except MlcanaryError as exc:
            log.warning("traffic counts: %s (%d groups dropped)", exc, len(counts))


async def _predict(model: ServedModel, rows: Any) -> Prediction:
    if model.batcher is None:
        raise Unavailable(f"model '{model.name}': not ready")
    return await model.batcher.submit(rows)


def new_request_id() -> str:
    """An id for a request that came without one: a UUIDv7 (RFC 9562) as 32 hex digits.

    Its first 48 bits are the milliseconds since the epoch, so the ids a server makes grow
    with time and each lands at the end of the prediction log's id index. A random id
    (UUIDv4) lands on a random page of it: with a log of 400,000 requests, SQLite then
    spends 4x the CPU per written record (22 -> 5.5 µs), mostly committing those pages.
    """
    bits = random.getrandbits(74)  # not os.urandom: its system call lets go of the GIL,
    # and the log's writer thread then holds it for up to a switch interval (5 ms)
    value = ((time.time_ns() // 1_000_000) & _MS_MASK) << 80 | 0x7 << 76 \
        | (bits >> 62) << 64 | 0b10 << 62 | (bits & _RAND_B_MASK)
    return f"{value:032x}"


_MS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1


def process_name() -> str:
    """Names this serving process's rows of ``log_stats``: host, PID and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def _open_store(store: Store) -> None:
    """Create the tables now; a database that is down must not keep the server from serving
    (the tap keeps records and retries, and the store opens on its first good write)."""
    try:
        store.open()
    except MlcanaryError as exc:
        log.error("prediction log: %s; predictions are buffered and retried", exc)


async def _purge_forever(store: Store, days: float) -> None:
    """Delete predictions past retention: at start, then every hour (or sooner for short ones)."""
    every = max(1.0, min(3600.0, days * 86400 / 24))
    while True:
        try:
            deleted = await asyncio.to_thread(store.purge, days * 86400)
            if deleted:
                log.info("prediction log: purged %d prediction(s) past %g days", deleted, days)
        except MlcanaryError as exc:
            log.warning("prediction log: retention purge failed: %s", exc)
        await asyncio.sleep(every)
