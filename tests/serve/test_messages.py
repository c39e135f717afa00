"""Requests that break the protocol get one clear message; responses carry what was chosen."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest

from mlcanary.errors import InvalidInput
from mlcanary.serve.messages import (
    InferenceRequest,
    RequestedOutput,
    binary_outputs,
    encode_response,
    parse_request,
)
from mlcanary.serve.tensors import Tensor


def body(**document: Any) -> bytes:
    return json.dumps(document).encode()


def one(**tensor: Any) -> bytes:
    return body(inputs=[{"name": "age", "datatype": "FP64", "shape": [2], **tensor}])


def binary(header: dict[str, Any], raw: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + raw, len(head)


def raw_input(datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    parameters = {"binary_data_size": size}
    return {"name": "x", "datatype": datatype, "shape": shape, "parameters": parameters}


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (b"{inputs", "request body: not valid JSON ("),
        (b"[1, 2]", "request body: expected a JSON object with 'inputs', got a list"),
        (body(), "request 'inputs': expected a non-empty list of tensors, got nothing"),
        (body(inputs=[]), "request 'inputs': expected a non-empty list of tensors, got an empty"),
        (body(inputs=[3]), "inputs[0]: expected an object with name, datatype and shape, got a"),
        (body(inputs=[{"datatype": "FP64"}]), "inputs[0]: expected 'name' as a non-empty string"),
        (body(inputs=[{"name": "age", "shape": [1]}]), "input 'age': missing 'datatype'"),
        (body(inputs=[{"name": "age", "datatype": "FP64"}]), "input 'age': missing 'shape'"),
        (
            one(datatype="FLOAT64", data=[1, 2]),
            "input 'age': unknown datatype 'FLOAT64'; expected one of BOOL, INT8,",
        ),
        (one(shape=[-1], data=[1]), "input 'age': expected 'shape' as a list of non-negative"),
        (one(shape=[2.0], data=[1, 2]), "got [2.0]"),
        (one(shape=[True], data=[1]), "got [True]"),
        (one(shape="2", data=[1, 2]), "input 'age': expected 'shape' as a list"),
        (one(data=[1, 2, 3]), "input 'age': expected 2 elements for shape [2], got 3"),
        (one(data=5), "input 'age': expected 'data' as a list, got int"),
        (one(data=[[1], [2, 3]]), "input 'age': 'data' nests lists of unequal lengths"),
        (
            one(data=[1, "2"]),
            "input 'age': expected numbers (or null) in 'data', got '2' at element 1",
        ),
        (
            one(datatype="INT8", data=[1, 200]),
            "expected INT8 values in [-128, 127] in 'data', got 200",
        ),
        (one(datatype="INT64", data=[1, 2.5]), "expected integers in 'data', got 2.5 at element 1"),
        (one(datatype="UINT8", data=[-1, 0]), "expected UINT8 values in [0, 255]"),
        (one(datatype="FP16", data=[1, 1e6]), "expected FP16 values within ±65504 in 'data'"),
        (
            one(datatype="BOOL", data=[True, 1]),
            "expected true or false in 'data', got 1 at element 1",
        ),
        (one(datatype="BYTES", data=["a", 1]), "expected strings (or null) in 'data', got 1"),
        (one(), "input 'age': missing 'data'; expected 'data' or binary_data_size"),
        (
            body(inputs=[{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}] * 2),
            "input 'a': appears twice; expected unique names",
        ),
        (
            one(data=[1, 2], parameters={"shared_memory_region": "r"}),
            "input 'age': parameter 'shared_memory_region' is not supported",
        ),
        (one(data=[1, 2], parameters=[1]), "input 'age' 'parameters': expected an object"),
        (
            one(data=[1, 2], parameters={"binary_data_size": 16}),
            "input 'age': has both 'data' and binary_data_size; expected one of them",
        ),
        (
            one(parameters={"binary_data_size": 16}),
            "input 'age': binary_data_size is set, but the request has no "
            "Inference-Header-Content-Length",
        ),
        (
            body(id=7, inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}]),
            "request 'id': expected a string, got 7",
        ),
        (
            body(
                parameters={"binary_data_output": "yes"},
                inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}],
            ),
            "request parameter 'binary_data_output': expected true or false, got 'yes'",
        ),
        (
            body(
                inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}],
                outputs=[{"name": "predict", "parameters": {"binary_data": 1}}],
            ),
            "output 'predict': expected binary_data true or false, got 1",
        ),
        (
            body(
                inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}],
                outputs=[{"name": "predict"}, {"name": "predict"}],
            ),
            "output 'predict': requested twice",
        ),
        (
            body(
                inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}],
                outputs=[{"name": "predict", "parameters": {"classification": 2}}],
            ),
            "output 'predict': parameter 'classification' is not supported",
        ),
        (
            body(inputs=[{"name": "a", "datatype": "FP64", "shape": [0], "data": []}], outputs=[1]),
            "outputs[0]: expected an object with 'name' as a non-empty string, got 1",
        ),
    ],
)
def test_malformed_json_request(request_body: bytes, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_request(request_body)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("header", "raw", "header_length", "expected"),
    [
        (
            {"inputs": [raw_input("FP64", [2], 16)]},
            bytes(16),
            10_000,
            "Inference-Header-Content-Length: expected a length between 0 and the body's",
        ),
        (
            {"inputs": [raw_input("FP64", [2], 16)]},
            bytes(16),
            -1,
            "got -1",
        ),
        (
            {"inputs": [raw_input("FP64", [2], 16)]},
            bytes(24),
            None,
            "request body: 24 bytes of binary data follow the header, but the inputs' "
            "binary_data_size add up to 16; expected them to match",
        ),
        (
            {"inputs": [raw_input("FP64", [2], 16)]},
            bytes(8),
            None,
            "input 'x': expected binary_data_size between 0 and the 8 bytes of binary data "
            "left, got 16",
        ),
        (
            {"inputs": [raw_input("FP64", [2], 8)]},
            bytes(8),
            None,
            "input 'x': expected 16 bytes of binary data for FP64 with shape [2] (8 per "
            "element), got 8",
        ),
        (
            {"inputs": [raw_input("BOOL", [2], 2)]},
            b"\x01\x02",
            None,
            "input 'x': expected BOOL bytes 0 or 1, got 2",
        ),
        (
            {"inputs": [raw_input("BYTES", [1], 6)]},
            b"\x05\x00\x00\x00ab",
            None,
            "input 'x': BYTES element 0 declares 5 bytes, but only 2 remain",
        ),
        (
            {"inputs": [raw_input("BYTES", [2], 6)]},
            b"\x01\x00\x00\x00a\x00",
            None,
            "input 'x': BYTES element 1 is cut short (1 bytes left)",
        ),
        (
            {"inputs": [raw_input("BYTES", [2], 5)]},
            b"\x01\x00\x00\x00a",
            None,
            "input 'x': expected 2 elements for shape [2], got 1",
        ),
        (
            {"inputs": [raw_input("FP64", [1], 8)]},
            bytes(8),
            3,
            "request header: not valid JSON",
        ),
    ],
)
def test_malformed_binary_request(
    header: dict[str, Any], raw: bytes, header_length: int | None, expected: str
) -> None:
    request_body, length = binary(header, raw)
    with pytest.raises(InvalidInput) as caught:
        parse_request(request_body, length if header_length is None else header_length)
    assert expected in str(caught.value)


def test_binary_inputs_are_cut_from_the_body_in_input_order() -> None:
    header = {
        "inputs": [
            raw_input("INT16", [2], 4) | {"name": "a"},
            {"name": "b", "datatype": "FP64", "shape": [1], "data": [0.5]},
            raw_input("UINT8", [3], 3) | {"name": "c"},
        ]
    }
    request = parse_request(*binary(header, b"\x01\x00\xff\xff" + b"\x07\x08\x09"))
    a, b, c = (t.data for t in request.inputs)
    assert a.tolist() == [1, -1] and b.tolist() == [0.5] and c.tolist() == [7, 8, 9]


def test_json_with_nan_tokens_is_read_as_python_clients_write_it() -> None:
    request = parse_request(
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[NaN,1]}]}'
    )
    assert np.isnan(request.inputs[0].data[0])


def request_with(outputs: list[RequestedOutput], **parameters: Any) -> InferenceRequest:
    return InferenceRequest("r", [], outputs, parameters)


@pytest.mark.parametrize(
    ("request_", "default", "expected"),
    [
        (request_with([]), False, set()),
        (request_with([]), True, {"predict", "probabilities"}),
        (request_with([], binary_data_output=True), False, {"predict", "probabilities"}),
        (request_with([], binary_data_output=False), True, set()),
        (request_with([RequestedOutput("predict", True)]), False, {"predict"}),
        (
            request_with([RequestedOutput("predict", False)], binary_data_output=True),
            False,
            {"probabilities"},
        ),
        (request_with([RequestedOutput("predict")]), True, {"predict", "probabilities"}),
    ],
)
def test_binary_outputs(request_: InferenceRequest, default: bool, expected: set[str]) -> None:
    assert binary_outputs(request_, ["predict", "probabilities"], default) == expected


def test_json_response_has_no_header_length_and_writes_nan_as_null() -> None:
    outputs = [Tensor("predict", "FP64", [2], np.array([1.5, np.nan]))]
    response, header_length = encode_response("churn", "3", "r-1", outputs)
    assert header_length is None
    assert orjson.loads(response) == {
        "model_name": "churn",
        "model_version": "3",
        "id": "r-1",
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [2], "data": [1.5, None]}],
    }


def test_binary_response_puts_raw_data_after_the_header() -> None:
    outputs = [
        Tensor("predict", "BYTES", [2], ["no", "yes"]),
        Tensor("probabilities", "FP64", [2, 2], np.array([[0.75, 0.25], [0.5, 0.5]])),
    ]
    response, header_length = encode_response("churn", None, None, outputs, {"predict"})
    assert header_length is not None
    header = orjson.loads(response[:header_length])
    assert "model_version" not in header and "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 13}
    assert header["outputs"][1]["data"] == [0.75, 0.25, 0.5, 0.5]
    assert response[header_length:] == b"\x02\x00\x00\x00no\x03\x00\x00\x00yes"
