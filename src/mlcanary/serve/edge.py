"""The HTTP edge shared by every route: JSON bodies, reading a request body within limits,
status codes for the core's errors, and per-route metrics and access logs.

Errors from the core map to Triton's codes here and only here: conflict 409, payload too
large 413, unsupported media type 415, unknown model or version 404, invalid argument 400,
not ready 503, unauthorized 401; the body is always ``{"error": "..."}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mlcanary.config import Settings
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
from mlcanary.serve.metrics import ServerMetrics

log = logging.getLogger("mlcanary.serve.app")
access = logging.getLogger("mlcanary.access")

Handler = Callable[[Request], Awaitable[Response]]

VERSION_HEADER = "x-mlcanary-model-version"
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


def status_of(exc: MlcanaryError) -> int:
    """The HTTP status of a core error (Triton's mapping)."""
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


async def read_body(request: Request, limit: int) -> bytes:
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


async def read_json(request: Request, limit: int) -> Any:
    """The body as a JSON document; ``InvalidInput`` when it is not one."""
    body = await read_body(request, limit)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body: not valid JSON ({exc})") from exc


def instrumented(
    endpoint: str, handler: Handler, metrics: ServerMetrics, settings: Settings
) -> Handler:
    """Count, time and log each call; the status is the one the client will see."""

    async def wrapped(request: Request) -> Response:
        start = time.perf_counter()
        metrics.in_flight.inc()
        status, version = 500, ""
        try:
            response = await handler(request)
            status = response.status_code
            version = response.headers.get(VERSION_HEADER, "")
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


async def core_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlcanaryError)
    return error_response(str(exc), status_of(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(f"route '{request.url.path}': not found", 404)
    response = error_response(str(exc.detail), exc.status_code)
    if exc.status_code == 405:
        response = error_response(
            f"method {request.method}: not allowed on '{request.url.path}'", 405)
    response.headers.update(exc.headers or {})  # 405 carries Allow (RFC 9110)
    return response


async def crash(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return error_response(f"internal error ({type(exc).__name__})", 500)


EXCEPTION_HANDLERS = {MlcanaryError: core_error, HTTPException: http_error, Exception: crash}
