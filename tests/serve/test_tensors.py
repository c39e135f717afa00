"""Every datatype and shape survives the trip through the wire, raw or JSON."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlcanary.serve.messages import encode_request, parse_request
from mlcanary.serve.tensors import DATATYPES, NUMPY_TYPES, Datatype, Tensor, from_raw

SHAPES = st.lists(st.integers(0, 4), min_size=1, max_size=3)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    if want.dtype == np.object_:
        assert got.tolist() == want.tolist()
    else:
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")


@st.composite
def tensors(draw: st.DrawFn, name: str, *, as_json: bool) -> Tensor:
    """A random tensor; in JSON, floats are finite or NaN (null) and BYTES are text or null."""
    datatype: Datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(SHAPES)
    if datatype == "BYTES":
        element = st.text(max_size=5).map(str.encode) if as_json else st.binary(max_size=5)
        if as_json:
            element = st.none() | element
        items = draw(st.lists(element, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        data = np.empty(len(items), dtype=np.object_)
        data[:] = items
        return Tensor(name, datatype, shape, data.reshape(shape))
    elements = None
    if datatype.startswith("FP"):
        elements = {"allow_infinity": not as_json, "allow_nan": True}
    array = draw(hnp.arrays(NUMPY_TYPES[datatype], shape, elements=elements))
    return Tensor(name, datatype, shape, array)


@st.composite
def requests(draw: st.DrawFn, *, all_json: bool) -> tuple[list[Tensor], set[str]]:
    """1-4 inputs, each sent raw or as JSON (``binary`` names the raw ones)."""
    inputs: list[Tensor] = []
    binary: set[str] = set()
    for i in range(draw(st.integers(1, 4))):
        raw = not all_json and draw(st.booleans())
        inputs.append(draw(tensors(f"x{i}", as_json=not raw)))
        if raw:
            binary.add(inputs[-1].name)
    return inputs, binary


@settings(deadline=None, max_examples=150)
@given(requests(all_json=False))
def test_binary_and_json_mixed_round_trip(case: tuple[list[Tensor], set[str]]) -> None:
    inputs, binary = case
    body, header_length = encode_request(inputs, binary=binary)
    assert (header_length is None) == (not binary)
    parsed = parse_request(body, header_length)
    assert [t.name for t in parsed.inputs] == [t.name for t in inputs]
    for got, want in zip(parsed.inputs, inputs, strict=True):
        assert (got.datatype, got.shape) == (want.datatype, want.shape)
        assert_same(np.asarray(got.data), want.array())


@settings(deadline=None, max_examples=150)
@given(requests(all_json=True))
def test_json_round_trip(case: tuple[list[Tensor], set[str]]) -> None:
    inputs, _ = case
    body, header_length = encode_request(inputs, request_id="r-1")
    assert header_length is None
    parsed = parse_request(body, header_length)
    assert parsed.id == "r-1"
    for got, want in zip(parsed.inputs, inputs, strict=True):
        assert_same(np.asarray(got.data), want.array())


@pytest.mark.parametrize(
    ("data", "datatype", "shape"),
    [
        ([[1, 2, 3], [4, 5, 6]], "INT32", [2, 3]),
        ([[1, 2, 3], [4, 5, 6]], "INT32", [6]),
        ([1.5, None], "FP32", [2]),
        ([["a", None]], "BYTES", [2, 1]),
        ([[True], [False]], "BOOL", [2]),
        ([], "UINT16", [0, 3]),
    ],
)
def test_json_data_may_be_flat_or_nested(data: list[Any], datatype: str, shape: list[int]) -> None:
    body = encode_json([{"name": "x", "datatype": datatype, "shape": shape, "data": data}])
    tensor = parse_request(body).inputs[0]
    assert tensor.shape == shape
    assert np.asarray(tensor.data).shape == tuple(shape)


def test_fp_null_reads_as_nan_and_bytes_null_as_none() -> None:
    body = encode_json(
        [
            {"name": "x", "datatype": "FP64", "shape": [2], "data": [None, 1]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": [None, "é"]},
        ]
    )
    x, s = parse_request(body).inputs
    assert np.isnan(x.data[0]) and x.data[1] == 1.0
    assert list(s.data) == [None, "é".encode()]


def test_raw_bytes_elements_may_be_empty_and_binary() -> None:
    raw = b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xff\x00"
    data = from_raw(raw, "BYTES", [2], "input 's'")
    assert data.tolist() == [b"", b"\xff\x00"]


def encode_json(inputs: list[dict[str, Any]]) -> bytes:
    return json.dumps({"inputs": inputs}).encode()
