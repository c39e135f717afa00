"""The HTTP app: Open Inference Protocol v2 (REST, with binary tensors) and a v1 predict route.

Errors from the core map to Triton's codes here and only here: invalid argument 400,
unknown model or version 404, payload too large 413, unsupported media type 415,
not ready 503; the body is always ``{"error": "..."}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcanary import __version__
from mlcanary.config import Settings
from mlcanary.errors import (
    InvalidInput,
    MlcanaryError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from mlcanary.serve import v1
from mlcanary.serve.messages import binary_outputs, encode_response, parse_request
from mlcanary.serve.outputs import PREDICT, PROBABILITIES, outputs_for, select_outputs
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.validation import rows_from_tensors

log = logging.getLogger(__name__)

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]
_JSON_TYPES = (
    "",
    "application/json",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
)
"""Accepted body types; the last is what ``curl -d`` sends by default, so it is read as JSON."""

STATUS: list[tuple[type[MlcanaryError], int]] = [
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (NotFound, 404),
    (InvalidInput, 400),
    (Unavailable, 503),
]


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, headers=headers, media_type="application/json")


def error_response(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


def create_app(settings: Settings, repository: ModelRepository) -> Starlette:
    """Wire the routes over a loaded ``repository``."""

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

    async def infer(request: Request) -> Response:
        model = _model(request)
        body = await _body(request, settings.max_request_bytes)
        header = request.headers.get(HEADER_LENGTH)
        header_length = _header_length(header) if header is not None else None
        parsed = parse_request(body, header_length)
        rows = rows_from_tensors(parsed.inputs, model.signature, settings.unseen_categories)
        prediction = model.runtime.predict(rows)
        outputs = select_outputs(
            outputs_for(model.signature, prediction.proba, prediction.predicted), parsed.outputs
        )
        binary = binary_outputs(parsed, [o.name for o in outputs], header_length is not None)
        request_id = parsed.id or uuid.uuid4().hex
        payload, json_length = encode_response(
            model.name, str(model.version), request_id, outputs, binary
        )
        headers = {"x-mlcanary-model-version": str(model.version)}
        if json_length is not None:
            headers["Inference-Header-Content-Length"] = str(json_length)
            return Response(payload, headers=headers, media_type="application/octet-stream")
        return Response(payload, headers=headers, media_type="application/json")

    async def predict_v1(request: Request) -> Response:
        name = request.path_params["name_verb"]
        if not name.endswith(":predict"):
            raise NotFound(f"route '{request.url.path}': expected /v1/models/NAME:predict")
        model = repository.get(name.removesuffix(":predict"))
        body = await _body(request, settings.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"request body: not valid JSON ({exc})") from exc
        tensors = v1.tensors_from_instances(document, model.signature)
        rows = rows_from_tensors(tensors, model.signature, settings.unseen_categories)
        answer = v1.predictions_document(model.runtime.predict(rows), model.signature)
        answer.update(model_name=model.name, model_version=str(model.version))
        return json_response(answer, headers={"x-mlcanary-model-version": str(model.version)})

    def _model(request: Request) -> ServedModel:
        params = request.path_params
        return repository.get(params["name"], params.get("version"))

    routes = [
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v1/models/{name_verb}", predict_v1, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
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
            "task": signature.task,
            "classes": signature.classes,
            "aliases": model.aliases,
            "used_columns": signature.names(),
        },
    }


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


async def _core_error(request: Request, exc: Exception) -> Response:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return error_response(str(exc), status)
    return error_response(str(exc), 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(f"route '{request.url.path}': not found", 404)
    if exc.status_code == 405:
        return error_response(f"method {request.method}: not allowed on '{request.url.path}'", 405)
    return error_response(str(exc.detail), exc.status_code)


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
    return create_app(settings, repository)


def from_environment() -> Starlette:
    """App factory for uvicorn workers: model names come from ``MLCANARY_SERVE_MODELS``."""
    import os

    return build(
        Settings(), [n for n in os.environ.get("MLCANARY_SERVE_MODELS", "").split(",") if n]
    )
