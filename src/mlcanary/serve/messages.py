"""Open Inference Protocol v2 requests and responses: bytes in, tensors out, and back.

A body is either JSON alone, or, under the binary tensor data extension, a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw data of every tensor whose
``parameters.binary_data_size`` is set, in tensor order. Both directions share one
encoder, so a client (``mlcanary bench``, tests) speaks exactly what the server reads.

>>> body, header_length = encode_request([Tensor("age", "FP64", [2], [41.0, 7.5])])
>>> parse_request(body, header_length).inputs[0].data
array([41. ,  7.5])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from mlcanary.errors import InvalidInput
from mlcanary.serve.tensors import Tensor, datatype_named, from_json, from_raw, to_json, to_raw

BINARY_SIZE = "binary_data_size"
_UNSUPPORTED = ("shared_memory_region", "classification")


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``binary_data`` None leaves the encoding to us."""

    name: str
    binary_data: bool | None = None


@dataclass(eq=False, slots=True)
class InferenceRequest:
    """A parsed inference request; its inputs are decoded and their names unique."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_request(body: bytes, header_length: int | None = None) -> InferenceRequest:
    """Decode a request body; ``header_length`` is the Inference-Header-Content-Length header.

    Raises ``InvalidInput`` naming the first thing that breaks the protocol.
    """
    if header_length is None:
        header, raw = body, memoryview(b"")
    elif not 0 <= header_length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length: expected a length between 0 and the body's "
            f"{len(body)} bytes, got {header_length}"
        )
    else:
        header, raw = body[:header_length], memoryview(body)[header_length:]
    where = "request body" if header_length is None else "request header"
    document = _load_json(header, where)
    if not isinstance(document, dict):
        raise InvalidInput(
            f"{where}: expected a JSON object with 'inputs', got {_json_type(document)}"
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"request 'id': expected a string, got {request_id!r}")
    parameters = _parameters(document.get("parameters"), "request")
    if not isinstance(parameters.get("binary_data_output", False), bool):
        raise InvalidInput(
            "request parameter 'binary_data_output': expected true or false, "
            f"got {parameters['binary_data_output']!r}"
        )
    inputs = _inputs(document.get("inputs"), raw, binary=header_length is not None)
    outputs = _outputs(document.get("outputs"))
    return InferenceRequest(request_id, inputs, outputs, parameters)


def encode_request(
    inputs: Sequence[Tensor],
    outputs: Sequence[RequestedOutput] = (),
    request_id: str | None = None,
    parameters: dict[str, Any] | None = None,
    binary: Iterable[str] = (),
) -> tuple[bytes, int | None]:
    """Encode a request as a client sends it; inputs named in ``binary`` travel raw.

    Returns the body and the header length to send as Inference-Header-Content-Length
    (None when the body is JSON alone).
    """
    document: dict[str, Any] = {} if request_id is None else {"id": request_id}
    if parameters:
        document["parameters"] = parameters
    document["inputs"], raw = _encode_tensors(inputs, set(binary))
    if outputs:
        document["outputs"] = [_requested(output) for output in outputs]
    return _join(document, raw)


def encode_response(
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: Sequence[Tensor],
    binary: Iterable[str] = (),
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """Encode a response; outputs named in ``binary`` travel raw after the JSON header.

    Returns the body and the header length to send as Inference-Header-Content-Length
    (None when the body is JSON alone). In JSON, NaN and infinities become ``null``:
    strict JSON has no spelling for them; raw data keeps them.
    """
    document: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        document["model_version"] = model_version
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    document["outputs"], raw = _encode_tensors(outputs, set(binary))
    return _join(document, raw)


def binary_outputs(
    request: InferenceRequest, names: Iterable[str], requested_default: bool = False
) -> set[str]:
    """Which of the outputs ``names`` to send raw.

    An output's own ``binary_data`` wins; otherwise the request parameter
    ``binary_data_output`` decides (tritonclient sets it whenever a request names no
    outputs); otherwise ``requested_default`` does (the app passes True when the request
    itself came with binary data, so a binary client gets a binary answer).
    """
    default = request.parameters.get("binary_data_output", requested_default)
    chosen = {o.name: o.binary_data for o in request.outputs if o.binary_data is not None}
    return {name for name in names if chosen.get(name, default)}


def _load_json(text: bytes, where: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as strict:
        try:
            # Python clients (tritonclient uses json.dumps) write NaN and Infinity, which
            # orjson rightly calls invalid; the standard library still reads them.
            return json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidInput(
                f"{where}: not valid JSON ({strict}); expected a JSON object with 'inputs'"
            ) from strict


def _inputs(value: object, raw: memoryview, *, binary: bool) -> list[Tensor]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            f"request 'inputs': expected a non-empty list of tensors, got {_json_type(value)}"
        )
    tensors: list[Tensor] = []
    seen: set[str] = set()
    offset = 0
    for index, item in enumerate(value):
        tensor, size = _input(item, index, raw[offset:] if binary else None)
        if tensor.name in seen:
            raise InvalidInput(f"input '{tensor.name}': appears twice; expected unique names")
        seen.add(tensor.name)
        tensors.append(tensor)
        offset += size
    if offset != len(raw):
        raise InvalidInput(
            f"request body: {len(raw)} bytes of binary data follow the header, but the inputs' "
            f"{BINARY_SIZE} add up to {offset}; expected them to match"
        )
    return tensors


def _input(item: object, index: int, raw: memoryview | None) -> tuple[Tensor, int]:
    """Decode one input; returns it and how many bytes of binary data it consumed."""
    if not isinstance(item, dict):
        raise InvalidInput(
            f"inputs[{index}]: expected an object with name, datatype and shape, "
            f"got {_json_type(item)}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}]: expected 'name' as a non-empty string, got {name!r}")
    where = f"input '{name}'"
    for key in ("datatype", "shape"):
        if key not in item:
            raise InvalidInput(f"{where}: missing '{key}'; expected name, datatype and shape")
    datatype = datatype_named(item["datatype"], where)
    shape = item["shape"]
    if not _is_shape(shape):
        raise InvalidInput(
            f"{where}: expected 'shape' as a list of non-negative integers, got {shape!r}"
        )
    parameters = _parameters(item.get("parameters"), where)
    if parameters:
        _refuse_unsupported(parameters, where)
    size = parameters.get(BINARY_SIZE)
    if size is None:
        if "data" not in item:
            raise InvalidInput(f"{where}: missing 'data'; expected 'data' or {BINARY_SIZE}")
        return Tensor(
            name, datatype, shape, from_json(item["data"], datatype, shape, where), parameters
        ), 0
    if "data" in item:
        raise InvalidInput(f"{where}: has both 'data' and {BINARY_SIZE}; expected one of them")
    if raw is None:
        raise InvalidInput(
            f"{where}: {BINARY_SIZE} is set, but the request has no "
            "Inference-Header-Content-Length; expected that header with binary data"
        )
    if not _is_size(size) or size > len(raw):
        raise InvalidInput(
            f"{where}: expected {BINARY_SIZE} between 0 and the {len(raw)} bytes of binary "
            f"data left, got {size!r}"
        )
    data = from_raw(raw[:size], datatype, shape, where)
    return Tensor(name, datatype, shape, data, parameters), size


def _outputs(value: object) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"request 'outputs': expected a list, got {_json_type(value)}")
    outputs: list[RequestedOutput] = []
    for index, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidInput(
                f"outputs[{index}]: expected an object with 'name' as a non-empty string, "
                f"got {item!r}"
            )
        where = f"output '{name}'"
        parameters = _parameters(item.get("parameters"), where)
        _refuse_unsupported(parameters, where)
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"{where}: expected binary_data true or false, got {binary!r}")
        if any(o.name == name for o in outputs):
            raise InvalidInput(f"{where}: requested twice; expected unique names")
        outputs.append(RequestedOutput(name, binary))
    return outputs


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} 'parameters': expected an object, got {_json_type(value)}")
    return value


def _refuse_unsupported(parameters: dict[str, Any], where: str) -> None:
    for key in _UNSUPPORTED:
        if key in parameters:
            raise InvalidInput(
                f"{where}: parameter '{key}' is not supported by this server; expected data "
                "in the request and outputs in the response"
            )


def _encode_tensors(
    tensors: Sequence[Tensor], binary: set[str]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    documents: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for tensor in tensors:
        document: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = dict(tensor.parameters)
        if tensor.name in binary:
            raw.append(to_raw(tensor))
            parameters[BINARY_SIZE] = len(raw[-1])
        else:
            parameters.pop(BINARY_SIZE, None)
            document["data"] = to_json(tensor)
        if parameters:
            document["parameters"] = parameters
        documents.append(document)
    return documents, raw


def _requested(output: RequestedOutput) -> dict[str, Any]:
    if output.binary_data is None:
        return {"name": output.name}
    return {"name": output.name, "parameters": {"binary_data": output.binary_data}}


def _join(document: dict[str, Any], raw: list[bytes]) -> tuple[bytes, int | None]:
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not raw:
        return header, None
    return header + b"".join(raw), len(header)


def _is_shape(value: object) -> bool:
    """A list of sizes (a plain loop: this runs for every tensor of every request)."""
    if type(value) is not list:
        return False
    for size in value:  # noqa: SIM110 (all() over a generator costs ~0.5 µs more)
        if type(size) is not int or size < 0:  # bool is not int by type
            return False
    return True


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: object) -> str:
    if value is None:
        return "nothing"
    if value == []:
        return "an empty list"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number")
