"""The HTTP app: Open Inference Protocol v2 (REST, with binary tensors), a v1 predict route,
and feedback (true labels joined to logged predictions by request id).

Every answered inference request is handed to the prediction log's tap after its response
is computed; the tap writes off the request path (``monitor/tap.py``).

Errors from the core map to Triton's codes here and only here: invalid argument 400,
unknown model or version 404, payload too large 413, unsupported media type 415,
not ready 503; the body is always ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcanary import __version__
from mlcanary.config import Settings
from mlcanary.control.policies import policy_rules
from mlcanary.control.status import status_document
from mlcanary.errors import (
    Conflict,
    InvalidInput,
    MlcanaryError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from mlcanary.monitor.tap import PredictionTap
from mlcanary.monitor.traffic import WARMUP_SECONDS, TrafficCounter
from mlcanary.serve import v1
from mlcanary.serve.admin import admin_routes, check_token
from mlcanary.serve.batcher import Batcher
from mlcanary.serve.messages import binary_outputs, encode_response, parse_request
from mlcanary.serve.metrics import ServerMetrics
from mlcanary.serve.openapi import docs_routes
from mlcanary.serve.outputs import PREDICT, PROBABILITIES, outputs_for, select_outputs
from mlcanary.serve.query import positive_int
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.router import KEY_HEADER, VARIANT_HEADER, Router
from mlcanary.serve.runtime import Prediction
from mlcanary.serve.swap import AliasWatcher
from mlcanary.serve.tensors import Tensor
from mlcanary.serve.validation import columns_from_tensors, merge_columns, row_count
from mlcanary.store.database import Store
from mlcanary.store.feedback import FeedbackResult, parse_feedback
from mlcanary.store.records import PredictionRecord
from mlcanary.store.traffic import TrafficLog
from mlcanary.types import SHADOW_VARIANT

log = logging.getLogger(__name__)
access = logging.getLogger("mlcanary.access")

Handler = Callable[[Request], Awaitable[Response]]

HEADER_LENGTH = "inference-header-content-length"
REQUEST_ID = "X-Request-Id"
"""V1 has no id field: a client may name its request in this header; every inference
response carries the id (V2 also in the body's ``id``, V1 also as ``id``)."""
EXTENSIONS = ["binary_tensor_data"]
_JSON_TYPES = (
    "",
    "application/json",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
)
"""Accepted body types; the last is what ``curl -d`` sends by default, so it is read as JSON."""

STATUS: list[tuple[type[MlcanaryError], int]] = [
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (NotFound, 404),
    (InvalidInput, 400),
    (Unavailable, 503),
    (Unauthorized, 401),
]


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


def create_app(
    settings: Settings,
    repository: ModelRepository,
    metrics: ServerMetrics | None = None,
    store: Store | None = None,
) -> Starlette:
    """Wire the routes over a loaded ``repository``; batchers run for the app's lifetime.

    With a ``store``, answered requests are logged (unless ``log_sample_rate`` is 0) and
    feedback is accepted; without one, the feedback route answers 503.
    """
    metrics = metrics or ServerMetrics()
    for model in repository.models.values():
        metrics.load_seconds.labels(model.name, str(model.version)).set(model.load_seconds)
    rules = policy_rules(settings)
    tap = None
    if store is not None and settings.log_sample_rate > 0:
        tap = PredictionTap(
            store.write_predictions,
            capacity=settings.log_buffer_records,
            flush_seconds=settings.log_flush_seconds,
            sample_rate=settings.log_sample_rate,
            models=repository.names,
        )
        metrics.watch_prediction_log(tap)
    router = Router(store)
    counter = TrafficCounter(warmup_seconds=WARMUP_SECONDS)
    shadows: set[asyncio.Task[None]] = set()
    if store is not None:
        metrics.watch_signals(store, repository.names)

    def make_batcher(model: ServedModel) -> Batcher:
        return Batcher(
            model.runtime.predict,
            merge=merge_columns,
            size=row_count,
            max_batch_size=settings.max_batch_size,
            max_delay=settings.max_batch_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
            observe=metrics.observer(model.name),
        )

    def swapped(model: ServedModel) -> None:
        metrics.load_seconds.labels(model.name, str(model.version)).set(model.load_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Imports and models leave millions of long-lived objects; without this, every
        # full collection walks them all (a pause of ~100 ms, seen as p99 latency).
        gc.collect()
        gc.freeze()
        counter.begin()
        for model in repository.models.values():
            model.batcher = make_batcher(model)
            model.batcher.start()
        loop = asyncio.get_running_loop()
        tasks = []
        if settings.poll_seconds > 0:
            swaps = AliasWatcher(
                repository, make_batcher, settings.poll_seconds, swapped, router=router
            )
            if store is not None:  # a (re)started server routes a running rollout at once
                await asyncio.to_thread(_open_store, store)
                await swaps.poll()
            tasks.append(loop.create_task(swaps.run()))
        if store is not None and tap is not None:
            await asyncio.to_thread(_open_store, store)
            tap.start()
        watchers: list[subprocess.Popen[bytes]] = []
        if store is not None and watches(settings):
            watchers = start_watchers(repository.names)
        process = process_name()  # in the lifespan: each worker process names its own rows
        if store is not None:
            tasks.append(loop.create_task(
                _flush_traffic_forever(store, counter, settings, tap, process)))
        if store is not None and settings.retention_days is not None:
            tasks.append(loop.create_task(_purge_forever(store, settings.retention_days)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        served = [*repository.models.values(), *repository.challengers.values()]
        for model in served:  # drain: queued requests are answered
            if model.batcher is not None:
                await model.batcher.stop()
        if tap is not None:  # after the drain: every answered request has been put
            await asyncio.to_thread(tap.close)
        if store is not None:
            await asyncio.to_thread(_write_traffic, store, counter, tap, process)
        for watcher in watchers:
            watcher.terminate()
        for watcher in watchers:
            await asyncio.to_thread(watcher.wait, 30)
        if store is not None:
            store.close()

    def instrumented(endpoint: str, handler: Handler) -> Handler:
        """Count, time and log each call; the status is the one the client will see."""

        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            metrics.in_flight.inc()
            status, version = 500, ""
            try:
                response = await handler(request)
                status = response.status_code
                version = response.headers.get("x-mlcanary-model-version", "")
                return response
            except MlcanaryError as exc:
                status = status_of(exc)
                raise
            finally:
                metrics.in_flight.dec()
                seconds = time.perf_counter() - start
                name = request.path_params.get("name") or request.path_params.get(
                    "name_verb", ""
                ).removesuffix(":predict")
                labels = (name, version, endpoint, str(status))
                variant = getattr(request.state, "variant", None)
                if variant is not None:  # inference answered by (or failed in) a variant
                    counter.record(
                        name, variant, request.state.served_version, seconds, status >= 500,
                        request.state.epoch,
                    )
                metrics.requests.labels(*labels).inc()
                metrics.latency.labels(*labels).observe(seconds)
                if settings.access_log:
                    access.info(
                        "%s %s %d",
                        request.method,
                        request.url.path,
                        status,
                        extra={
                            "request_id": getattr(request.state, "request_id", None),
                            "model": name,
                            "version": version,
                            "endpoint": endpoint,
                            "status": status,
                            "latency_ms": round(seconds * 1000, 3),
                        },
                    )

        return wrapped

    async def predict(model: ServedModel, rows: Any) -> Prediction:
        if model.batcher is None:
            raise Unavailable(f"model '{model.name}': not ready")
        return await model.batcher.submit(rows)

    def log_prediction(
        model: ServedModel,
        request_id: str,
        rows: Any,
        prediction: Prediction,
        start: float,
        variant: str = "champion",
    ) -> None:
        """Hand the answered request to the tap: a few attribute stores, no encoding."""
        if tap is None or not tap.sampled(request_id):
            return
        tap.put(
            PredictionRecord(
                request_id,
                time.time(),
                model.name,
                model.version,
                rows,
                prediction.predicted,
                prediction.proba,
                model.signature.classes,
                (time.perf_counter() - start) * 1000,
                variant,
            )
        )

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        if len(repository.models) < len(repository.names):
            return json_response({"ready": False}, 503)
        return json_response({"ready": True})

    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "mlcanary", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request: Request) -> Response:
        model = _model(request)
        return json_response(metadata(model))

    async def model_ready(request: Request) -> Response:
        _model(request)
        return json_response({"name": request.path_params["name"], "ready": True})

    def pick(
        request: Request, inputs: Sequence[Tensor], request_id: str
    ) -> tuple[str, ServedModel, str]:
        """The variant that answers, its loaded version, and the request's assignment key.

        No await between here and ``held()``: a swap cannot retire the version in between.
        """
        name = request.path_params["name"]
        challenger = repository.challengers.get(name)
        request.state.epoch = router.epoch(name, challenger.version if challenger else None)
        if request.path_params.get("version") is not None:  # the caller chose the version
            request.state.epoch = 0
            model = _model(request)
            chosen = "challenger" if model is repository.challengers.get(name) else "champion"
            return chosen, model, request_id
        champion = repository.get(name)
        key = router.key(name, request.headers.get(KEY_HEADER), inputs, request_id)
        if challenger is not None and router.choose(name, key) == "challenger":
            return "challenger", challenger, key
        return "champion", champion, key

    def mirror(name: str, key: str, inputs: Sequence[Tensor], request_id: str) -> None:
        """Shadow: a copy of the request for the challenger, answered to nobody."""
        challenger = repository.challengers.get(name)
        if challenger is None or not router.shadow(name, key):
            return
        task = asyncio.get_running_loop().create_task(
            _shadow(challenger, inputs, f"{request_id}:shadow")
        )
        shadows.add(task)
        task.add_done_callback(shadows.discard)

    async def _shadow(model: ServedModel, inputs: Sequence[Tensor], request_id: str) -> None:
        start = time.perf_counter()
        try:
            with model.held():
                rows = columns_from_tensors(inputs, model.signature, settings.unseen_categories)
                prediction = await predict(model, rows)
        except Exception as exc:  # its failure is the challenger's record, not the client's
            failed = not isinstance(exc, InvalidInput)
            counter.record(model.name, SHADOW_VARIANT, model.version, time.perf_counter() - start,
                           failed)
            return
        counter.record(model.name, SHADOW_VARIANT, model.version, time.perf_counter() - start,
                       False)
        log_prediction(model, request_id, rows, prediction, start, SHADOW_VARIANT)

    async def infer(request: Request) -> Response:
        check_token(request, settings.inference_token)
        _model(request)  # an unknown model or version: 404 before the body is read
        start = time.perf_counter()
        body = await _body(request, settings.max_request_bytes)
        header = request.headers.get(HEADER_LENGTH)
        header_length = _header_length(header) if header is not None else None
        parsed = parse_request(body, header_length)
        request_id = parsed.id or uuid.uuid4().hex
        request.state.request_id = request_id
        variant, model, key = pick(request, parsed.inputs, request_id)
        request.state.variant, request.state.served_version = variant, model.version
        with model.held():
            rows = columns_from_tensors(parsed.inputs, model.signature, settings.unseen_categories)
            prediction = await predict(model, rows)
        outputs = select_outputs(
            outputs_for(model.signature, prediction.proba, prediction.predicted), parsed.outputs
        )
        binary = binary_outputs(parsed, [o.name for o in outputs], header_length is not None)
        payload, json_length = encode_response(
            model.name, str(model.version), request_id, outputs, binary, {"variant": variant}
        )
        log_prediction(model, request_id, rows, prediction, start, variant)
        mirror(model.name, key, parsed.inputs, request_id)
        headers = {
            "x-mlcanary-model-version": str(model.version),
            REQUEST_ID: request_id,
            VARIANT_HEADER: variant,
        }
        if json_length is not None:
            headers["Inference-Header-Content-Length"] = str(json_length)
            return Response(payload, headers=headers, media_type="application/octet-stream")
        return Response(payload, headers=headers, media_type="application/json")

    async def predict_v1(request: Request) -> Response:
        check_token(request, settings.inference_token)
        name = request.path_params["name_verb"]
        if not name.endswith(":predict"):
            raise NotFound(f"route '{request.url.path}': expected /v1/models/NAME:predict")
        name = name.removesuffix(":predict")
        repository.get(name)
        request.path_params["name"] = name
        start = time.perf_counter()
        body = await _body(request, settings.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"request body: not valid JSON ({exc})") from exc
        request_id = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
        request.state.request_id = request_id
        champion = repository.get(name)  # instances are read by the champion's signature
        tensors = v1.tensors_from_instances(document, champion.signature)
        variant, model, key = pick(request, tensors, request_id)
        request.state.variant, request.state.served_version = variant, model.version
        with model.held():
            rows = columns_from_tensors(tensors, model.signature, settings.unseen_categories)
            prediction = await predict(model, rows)
        answer = v1.predictions_document(prediction, model.signature)
        answer.update(
            model_name=model.name, model_version=str(model.version), id=request_id,
            variant=variant,
        )
        log_prediction(model, request_id, rows, prediction, start, variant)
        mirror(name, key, tensors, request_id)
        headers = {
            "x-mlcanary-model-version": str(model.version),
            REQUEST_ID: request_id,
            VARIANT_HEADER: variant,
        }
        return json_response(answer, headers=headers)

    async def feedback(request: Request) -> Response:
        """Labels for logged predictions: ``[{"id": ..., "label": ...}, ...]``."""
        check_token(request, settings.inference_token)
        name = _model(request).name
        if store is None:
            raise Unavailable("feedback: this server has no prediction log store")
        body = await _body(request, settings.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"request body: not valid JSON ({exc})") from exc
        items = parse_feedback(document)
        log_store = store

        def join() -> FeedbackResult:
            # A label may follow its prediction within one flush interval: write what
            # this process still holds first, so it is not reported unknown.
            if tap is not None:
                tap.flush()
            return log_store.add_feedback(name, items)

        result = await asyncio.to_thread(join)
        return json_response(result.as_dict())

    async def monitor_status(request: Request) -> Response:
        """The monitor's signals for a served model: ``mlcanary status NAME --json``."""
        name = _model(request).name
        if store is None:
            raise Unavailable("monitor: this server has no prediction log store")
        last = positive_int(request.query_params.get("last", "10"), "last")
        log_store = store
        document = await asyncio.to_thread(status_document, log_store, name, last=last,
                                           policies=rules)
        return json_response(document)

    async def prometheus(request: Request) -> Response:
        # In a thread: the signal gauges read the store (every few seconds), and a slow
        # or unreachable database must not hold the event loop that answers requests.
        body = await asyncio.to_thread(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    def _model(request: Request) -> ServedModel:
        params = request.path_params
        return repository.get(params["name"], params.get("version"))

    routes = [  # matched in order, one pattern at a time: the prediction routes first
        Route("/v2/models/{name}/infer", instrumented("v2_infer", infer), methods=["POST"]),
        Route(
            "/v2/models/{name}/versions/{version}/infer",
            instrumented("v2_infer", infer),
            methods=["POST"],
        ),
        Route("/v1/models/{name_verb}", instrumented("v1_predict", predict_v1), methods=["POST"]),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route(
            "/v2/models/{name}/feedback", instrumented("v2_feedback", feedback), methods=["POST"]
        ),
        Route("/monitor/{name}", instrumented("monitor", monitor_status)),
        Route("/metrics", prometheus),
        *admin_routes(settings, store, json_response),
        *docs_routes(admin=settings.admin_token is not None,
                     inference_token=settings.inference_token is not None),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            MlcanaryError: _core_error,
            HTTPException: _http_error,
            Exception: _crash,
        },
    )


def metadata(model: ServedModel) -> dict[str, Any]:
    """V2 model metadata: inputs from the signature, outputs from the task."""
    signature = model.signature
    outputs = [{"name": PREDICT, "datatype": _label_datatype(model), "shape": [-1]}]
    if signature.classes is not None:
        outputs.append(
            {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(signature.classes)]}
        )
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": "mlcanary",
        "inputs": [
            {"name": c.name, "datatype": c.datatype, "shape": [-1]} for c in signature.columns
        ],
        "outputs": outputs,
        "parameters": {
            "runtime": model.runtime.kind,
            "runtime_note": model.runtime_note,
            "task": signature.task,
            "classes": signature.classes,
            "aliases": model.aliases,
            "used_columns": signature.names(),
        },
    }


def watches(settings: Settings) -> bool:
    """Whether serving runs the monitor and controller: on, and with predictions logged."""
    return settings.monitor and settings.log_sample_rate > 0


def start_watchers(names: list[str]) -> list[subprocess.Popen[bytes]]:
    """``mlcanary watch`` as one child process (see ``control.loop``).

    Its monitor thread runs at nice 19, so that under load serving gets the CPU first; its
    rollout controller at the server's priority, so that a rollback is not late on a busy
    machine. It inherits the environment (so the same settings) and stops with the server;
    the kernel ends it should the server die first (Linux: parent-death signal).
    """

    def die_with_parent() -> None:
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    command = [sys.executable, "-m", "mlcanary", "watch", "--quiet", "--monitor-nice", "19",
               *names]
    return [subprocess.Popen(command, preexec_fn=die_with_parent)]


async def _flush_traffic_forever(
    store: Store, counter: TrafficCounter, settings: Settings, tap: PredictionTap | None,
    process: str,
) -> None:
    """Write each period's request counts for the rollout gates (every flush interval)."""
    while True:
        await asyncio.sleep(settings.log_flush_seconds)
        await asyncio.to_thread(_write_traffic, store, counter, tap, process)


def process_name() -> str:
    """Names this serving process's rows of ``log_stats``: host, PID and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def _write_traffic(
    store: Store, counter: TrafficCounter, tap: PredictionTap | None, process: str
) -> None:
    counts = counter.drain()
    try:
        TrafficLog(store).write(counts)
        if tap is not None:  # so that `mlcanary status` can say what was dropped
            TrafficLog(store).write_log_stats(process, dict(tap.written), dict(tap.dropped))
    except MlcanaryError as exc:
        log.warning("traffic counts: %s (%d groups dropped)", exc, len(counts))


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


def _label_datatype(model: ServedModel) -> str:
    classes = model.signature.classes
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) for c in classes):
        return "INT64"
    return "BYTES"


async def _body(request: Request, limit: int) -> bytes:
    """Read the body, refusing a wrong content type or more than ``limit`` bytes early."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type: expected application/json (or application/octet-stream with "
            f"binary tensors), got '{content_type}'"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body: {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body: over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _header_length(value: str) -> int:
    if not value.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length: expected a byte count, got '{value}'")
    return int(value)


def status_of(exc: MlcanaryError) -> int:
    """The HTTP status of a core error (Triton's mapping)."""
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


async def _core_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlcanaryError)
    return error_response(str(exc), status_of(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(f"route '{request.url.path}': not found", 404)
    response = error_response(str(exc.detail), exc.status_code)
    if exc.status_code == 405:
        response = error_response(
            f"method {request.method}: not allowed on '{request.url.path}'", 405)
    response.headers.update(exc.headers or {})  # 405 carries Allow (RFC 9110)
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return error_response(f"internal error ({type(exc).__name__})", 500)


def build(settings: Settings, names: list[str]) -> Starlette:
    """Load every named champion and return the app (the server's one wiring point)."""
    from mlcanary.registry.versions import ModelRegistry

    start = time.perf_counter()
    repository = ModelRepository(ModelRegistry(settings), names)
    repository.load()
    log.info("loaded %d model(s) in %.2f s", len(names), time.perf_counter() - start)
    return create_app(settings, repository, ServerMetrics(), Store.from_settings(settings))


WORKER_SETTINGS = "MLCANARY_WORKER_SETTINGS"
"""The variable through which ``mlcanary serve --workers N`` hands its resolved settings
(flags, environment and TOML) and model names to the workers uvicorn spawns."""


def worker_settings(settings: Settings, names: list[str]) -> str:
    """What ``from_environment`` reads in each worker."""
    return orjson.dumps({"names": names, "settings": settings.model_dump(mode="json")}).decode()


def from_environment() -> Starlette:
    """App factory for uvicorn workers: the supervisor's settings and model names."""
    document = orjson.loads(os.environ[WORKER_SETTINGS])
    return build(Settings(**document["settings"]), document["names"])
