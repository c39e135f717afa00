"""REST adapters over the inference service: Open Inference Protocol v2 (JSON and the
binary tensor extension), V1 ``:predict``, feedback and the monitor's status.

Each inference route is decode -> ``InferenceService.infer`` -> encode; nothing about
routing, validation, prediction or logging lives here.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcanary import __version__
from mlcanary.config import Settings
from mlcanary.control.policies import policy_rules
from mlcanary.errors import InvalidInput, NotFound
from mlcanary.serve import v1
from mlcanary.serve.admin import check_token
from mlcanary.serve.edge import VERSION_HEADER, instrumented, json_response, read_body, read_json
from mlcanary.serve.messages import binary_outputs, encode_response, parse_request
from mlcanary.serve.outputs import PREDICT, PROBABILITIES, select_outputs
from mlcanary.serve.query import positive_int
from mlcanary.serve.repository import ServedModel
from mlcanary.serve.router import KEY_HEADER, VARIANT_HEADER
from mlcanary.serve.service import Answer, Inference, InferenceService, new_request_id

HEADER_LENGTH = "inference-header-content-length"
REQUEST_ID = "X-Request-Id"
"""V1 has no id field: a client may name its request in this header; every inference
response carries the id (V2 also in the body's ``id``, V1 also as ``id``)."""
EXTENSIONS = ["binary_tensor_data"]


def rest_routes(service: InferenceService, settings: Settings) -> list[Route]:
    """Health, metadata, V2 infer, V1 predict, feedback and monitor routes over ``service``."""
    metrics, limit = service.metrics, settings.max_request_bytes
    rules = policy_rules(settings)

    def model_of(request: Request) -> ServedModel:
        return service.model(request.path_params["name"], request.path_params.get("version"))

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        return json_response({"ready": True}) if service.ready() else json_response(
            {"ready": False}, 503)

    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "mlcanary", "version": __version__, "extensions": EXTENSIONS})

    async def model_metadata(request: Request) -> Response:
        return json_response(metadata(model_of(request)))

    async def model_ready(request: Request) -> Response:
        model_of(request)
        return json_response({"name": request.path_params["name"], "ready": True})

    async def infer(request: Request) -> Response:
        check_token(request, settings.inference_token)
        model_of(request)  # an unknown model or version: 404 before the body is read
        started = time.perf_counter()
        body = await read_body(request, limit)
        header = request.headers.get(HEADER_LENGTH)
        header_length = _header_length(header) if header is not None else None
        parsed = parse_request(body, header_length)
        request_id = request.state.request_id = parsed.id or new_request_id()
        answer = await service.infer(Inference(
            request.path_params["name"], parsed.inputs, request.path_params.get("version"),
            request_id, request.headers.get(KEY_HEADER), started,
        ))
        outputs = select_outputs(answer.outputs(), parsed.outputs)
        binary = binary_outputs(parsed, [o.name for o in outputs], header_length is not None)
        payload, json_length = encode_response(
            answer.model, str(answer.version), answer.id, outputs, binary,
            {"variant": answer.variant},
        )
        headers = _headers(answer)
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
        champion = service.model(name)  # instances are read by the champion's signature
        started = time.perf_counter()
        document = await read_json(request, limit)
        request_id = request.state.request_id = request.headers.get(REQUEST_ID) or new_request_id()
        tensors = v1.tensors_from_instances(document, champion.signature)
        answer = await service.infer(Inference(
            name, tensors, None, request_id, request.headers.get(KEY_HEADER), started))
        body = v1.predictions_document(answer.prediction, answer.signature)
        body.update(model_name=answer.model, model_version=str(answer.version), id=answer.id,
                    variant=answer.variant)
        return json_response(body, headers=_headers(answer))

    async def feedback(request: Request) -> Response:
        """Labels for logged predictions: ``[{"id": ..., "label": ...}, ...]``."""
        check_token(request, settings.inference_token)
        name = model_of(request).name
        result = await service.feedback(name, await read_json(request, limit))
        return json_response(result.as_dict())

    async def monitor_status(request: Request) -> Response:
        """The monitor's signals for a served model: ``mlcanary status NAME --json``."""
        name = model_of(request).name
        last = positive_int(request.query_params.get("last", "10"), "last")
        return json_response(await service.status(name, last, rules))

    def counted(endpoint: str, handler: Any) -> Any:
        return instrumented(endpoint, handler, metrics, settings)

    return [  # matched in order, one pattern at a time: the prediction routes first
        Route("/v2/models/{name}/infer", counted("v2_infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", counted("v2_infer", infer),
              methods=["POST"]),
        Route("/v1/models/{name_verb}", counted("v1_predict", predict_v1), methods=["POST"]),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/feedback", counted("v2_feedback", feedback), methods=["POST"]),
        Route("/monitor/{name}", counted("monitor", monitor_status)),
    ]


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


def _headers(answer: Answer) -> dict[str, str]:
    return {VERSION_HEADER: str(answer.version), REQUEST_ID: answer.id,
            VARIANT_HEADER: answer.variant}


def _label_datatype(model: ServedModel) -> str:
    classes = model.signature.classes
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) for c in classes):
        return "INT64"
    return "BYTES"


def _header_length(value: str) -> int:
    if not value.strip().isdigit():
        raise InvalidInput(f"Inference-Header-Content-Length: expected a byte count, got '{value}'")
    return int(value)
