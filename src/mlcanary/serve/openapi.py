"""The server's OpenAPI 3.1 document (``/openapi.json``) and its docs page (``/docs``).

Bodies the server checks with pydantic (feedback, deploy) are described by the same
models; the V2 and V1 bodies, parsed by hand on the hot path (``messages``, ``v1``), by
models here that follow the Open Inference Protocol's REST spec. The document lists only
the routes this server has (admin routes only with an admin token) and, where a token
guards a route, the bearer scheme. The suite runs schemathesis over it against a real
server: no 5xx, every status and body as documented.

The docs page is Swagger UI from the installed ``swagger-ui-bundle`` package: no CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mlcanary import __version__
from mlcanary.serve.admin import DeployBody
from mlcanary.serve.query import MOST
from mlcanary.serve.tensors import Datatype
from mlcanary.store.feedback import FeedbackBody

REF = "#/components/schemas/{model}"


class Open(BaseModel):
    """A documented body that may carry fields beyond those listed."""

    model_config = ConfigDict(extra="allow")


class RequestInput(Open):
    name: str = Field(description="a column of the model's signature, or 'input-0'")
    shape: list[int] = Field(description="[rows] per column; [rows, columns] for 'input-0'")
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the tensor's bytes travel after the JSON header")
    data: list[Any] | None = Field(None, description="the values, row-major (flat or nested)")


class RequestOutput(Open):
    name: str = Field(description="'predict' or 'predict_proba'")
    parameters: dict[str, Any] | None = None


class InferenceRequest(Open):
    id: str | None = Field(None, description="echoed in the response; the prediction log key")
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(Open):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(Open):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(Open):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(Open):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ServerMetadata(Open):
    name: str
    version: str
    extensions: list[str]


class Health(Open):
    live: bool | None = None
    ready: bool | None = None
    name: str | None = None


class V1Request(Open):
    instances: list[dict[str, Any] | list[Any]] = Field(
        min_length=1, description="rows: objects (column -> value) or lists in signature order")


class V1Response(Open):
    predictions: list[Any]
    probabilities: list[list[float | None]] | None = None
    classes: list[Any] | None = None


class FeedbackResponse(Open):
    matched: int
    new: int
    changed: int
    unchanged: int
    unknown: list[str]


class Error(Open):
    error: str = Field(description="what was wrong, where, what is allowed, what came")


MODELS: tuple[type[BaseModel], ...] = (
    InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata, Health, V1Request,
    V1Response, FeedbackBody, FeedbackResponse, DeployBody, Error,
)


def openapi_document(*, admin: bool, inference_token: bool) -> dict[str, Any]:
    """The document for a server with (or without) admin routes and an inference token."""
    _, definitions = models_json_schema(
        [(m, "validation" if m in (FeedbackBody, DeployBody) else "serialization")
         for m in MODELS], ref_template=REF)
    schemas = dict(definitions.get("$defs", {}))
    schemas["Feedback"] = TypeAdapter(list[FeedbackBody]).json_schema(ref_template=REF)
    schemas["Object"] = {"type": "object"}
    guarded: list[Any] | None = [{"bearer": []}] if inference_token else None
    model = _parameter("name", "a served model's name")
    version = _parameter("version", "one of the model's versions")
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _op("Server liveness", "Health", (200,))},
        "/v2/health/ready": {"get": {**_op("Server readiness", "Health", (200,)),
                                     "responses": _responses((200, 503), _ref("Health"),
                                                             ok_codes=(200, 503))}},
        "/v2": {"get": _op("Server metadata", "ServerMetadata", (200,))},
        "/v2/models/{name}": {"get": _op("Model metadata", "ModelMetadata", (200, 404),
                                         [model])},
        "/v2/models/{name}/versions/{version}": {
            "get": _op("Model version metadata", "ModelMetadata", (200, 404), [model, version])},
        "/v2/models/{name}/ready": {"get": _op("Model readiness", "Health", (200, 404),
                                               [model])},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": _op("Model version readiness", "Health", (200, 404), [model, version])},
        "/v2/models/{name}/infer": {"post": _infer([model], guarded)},
        "/v2/models/{name}/versions/{version}/infer": {"post": _infer([model, version], guarded)},
        "/v1/models/{name}:predict": {"post": _op(
            "Predict, TF-Serving style", "V1Response", (200, 400, 404, 413, 415, 503), [model],
            body="V1Request", security=guarded)},
        "/v2/models/{name}/feedback": {"post": _op(
            "True labels for logged predictions, by request id", "FeedbackResponse",
            (200, 400, 404, 413, 415, 503), [model], body="Feedback", security=guarded)},
        "/monitor/{name}": {"get": _op(
            "The monitor's signals for a model", "Object", (200, 400, 404, 503),
            [model, _parameter("last", "how many windows (default 10)", "query", "integer")])},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    }
    if admin:
        paths.update(_admin_paths(model))
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "mlcanary", "version": __version__,
                 "description": "Open Inference Protocol v2 (with the binary tensor data "
                                "extension), V1 predict, feedback and the admin API."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if admin or inference_token:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}}
    return document


def docs_routes(*, admin: bool, inference_token: bool) -> list[BaseRoute]:
    """``/openapi.json``, ``/docs`` and Swagger UI's files under ``/docs/static``.

    The document is built on its first request, so a start never pays for it."""
    import swagger_ui_bundle

    built: list[bytes] = []

    async def openapi(request: Request) -> Response:
        if not built:
            built.append(orjson.dumps(openapi_document(admin=admin,
                                                       inference_token=inference_token)))
        return Response(built[0], media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_PAGE)

    return [
        Route("/openapi.json", openapi),
        Route("/docs", docs),
        Mount("/docs/static", StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path))),
    ]


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlcanary API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


def _admin_paths(model: dict[str, Any]) -> dict[str, Any]:
    guarded: list[Any] = [{"bearer": []}]
    codes = (200, 400, 401, 404, 409, 503)
    last = _parameter("last", "how many events (default 50)", "query", "integer")
    paths = {
        "/admin/models/{name}/deploy": {"post": _op(
            "Start a rollout", "Object", codes, [model], body="DeployBody", security=guarded)},
        "/admin/models/{name}/deployment": {"get": _op(
            "The model's rollout", "Object", codes, [model], security=guarded)},
        "/admin/models/{name}/events": {"get": {**_op(
            "The model's rollout events, newest last", "Object", codes, [model, last],
            security=guarded), "responses": _responses(codes, {"type": "array"})}},
    }
    for verb in ("promote", "rollback", "pause", "resume"):
        paths[f"/admin/models/{{name}}/{verb}"] = {"post": _op(
            f"{verb.capitalize()} the model's rollout", "Object", codes, [model],
            security=guarded)}
    return paths


def _infer(parameters: list[dict[str, Any]], security: list[Any] | None) -> dict[str, Any]:
    return _op("Inference (Open Inference Protocol v2)", "InferenceResponse",
               (200, 400, 404, 413, 415, 503), parameters, body="InferenceRequest",
               security=security)


def _op(summary: str, schema: str, codes: tuple[int, ...],
        parameters: list[dict[str, Any]] | None = None, *, body: str | None = None,
        security: list[Any] | None = None) -> dict[str, Any]:
    if security:
        codes = tuple(sorted({*codes, 401}))
    operation: dict[str, Any] = {
        "summary": summary, "responses": _responses(codes, _ref(schema))}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(body)}}}
    if security:
        operation["security"] = security
    return operation


def _responses(codes: tuple[int, ...], ok: dict[str, Any],
               ok_codes: tuple[int, ...] = (200,)) -> dict[str, Any]:
    return {str(code): {"description": "OK" if code == 200 else "Error", "content": {
        "application/json": {"schema": ok if code in ok_codes else _ref("Error")}}}
        for code in codes}


def _ref(model: str) -> dict[str, str]:
    return {"$ref": REF.format(model=model)}


def _parameter(name: str, description: str, where: str = "path",
               kind: str = "string") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if kind == "integer":
        schema.update(minimum=1, maximum=MOST)
    return {"name": name, "in": where, "required": where == "path",
            "description": description, "schema": schema}

