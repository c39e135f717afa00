"""Bodies built by the real tritonclient parse exactly; our responses decode in it exactly.

No server is started: the client's static body builder and response parser are enough
to pin the wire format on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlcanary.serve.messages import RequestedOutput, binary_outputs, encode_response, parse_request
from mlcanary.serve.tensors import DATATYPES, NUMPY_TYPES, Datatype, Tensor

httpclient = pytest.importorskip("tritonclient.http")
Client = httpclient.InferenceServerClient


def sample(datatype: Datatype, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values that stress each type: extremes, NaN, empty and non-ASCII text."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if datatype == "BYTES":
        words = [b"", b"Berlin", "München".encode(), b"a\x00b", b"x" * 300]
        items = np.empty(size, dtype=np.object_)
        items[:] = [words[i % len(words)] for i in range(size)]
        return items.reshape(shape)
    dtype = NUMPY_TYPES[datatype]
    if datatype == "BOOL":
        return rng.integers(0, 2, size).astype(bool).reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
        values[:2] = [info.min, info.max][: min(2, size)]
        return values.reshape(shape)
    values = rng.normal(scale=1e3, size=size).astype(dtype)
    values[0] = np.nan
    return values.reshape(shape)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype == np.object_:
        assert got.dtype == np.object_
        assert got.tolist() == want.tolist()
    else:
        assert got.dtype == want.dtype
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")


@pytest.mark.parametrize("as_binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_request_from_tritonclient_parses_exactly(datatype: Datatype, as_binary: bool) -> None:
    arrays = {"a": sample(datatype, (5,)), "b": sample(datatype, (3, 2), seed=1)}
    inputs = []
    for name, array in arrays.items():
        tensor = httpclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=as_binary)
        inputs.append(tensor)
    body, json_size = Client.generate_request_body(inputs, request_id="req-7")
    assert (json_size is not None) == as_binary
    request = parse_request(body, json_size)
    assert request.id == "req-7"
    assert [t.name for t in request.inputs] == ["a", "b"]
    for tensor in request.inputs:
        assert tensor.datatype == datatype
        assert_same(np.asarray(tensor.data), arrays[tensor.name])


def test_requested_outputs_and_the_clients_binary_default() -> None:
    tensor = httpclient.InferInput("age", [1], "FP64")
    tensor.set_data_from_numpy(np.array([41.0]), binary_data=False)
    named = [
        httpclient.InferRequestedOutput("predict", binary_data=False),
        httpclient.InferRequestedOutput("probabilities", binary_data=True),
    ]
    body, json_size = Client.generate_request_body([tensor], outputs=named)
    request = parse_request(body, json_size)
    assert request.outputs == [
        RequestedOutput("predict", False),
        RequestedOutput("probabilities", True),
    ]
    assert binary_outputs(request, ["predict", "probabilities"]) == {"probabilities"}
    # Naming no outputs, the client asks for all of them in binary.
    body, json_size = Client.generate_request_body([tensor])
    request = parse_request(body, json_size)
    assert binary_outputs(request, ["predict", "probabilities"]) == {"predict", "probabilities"}


@pytest.mark.parametrize("binary", ["none", "some", "all"])
def test_response_decodes_in_tritonclient(binary: str) -> None:
    arrays = {f"out_{d.lower()}": sample(d, (2, 3), seed=i) for i, d in enumerate(DATATYPES)}
    outputs = [
        Tensor(name, datatype, [2, 3], array)
        for (name, array), datatype in zip(arrays.items(), DATATYPES, strict=True)
    ]
    chosen = {"none": set(), "some": set(list(arrays)[::2]), "all": set(arrays)}[binary]
    body, header_length = encode_response("churn", "2", "req-7", outputs, chosen)
    result = Client.parse_response_body(body, verbose=False, header_length=header_length)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "churn",
        "2",
        "req-7",
    )
    for name, want in arrays.items():
        got = result.as_numpy(name)
        if want.dtype == np.object_ and name not in chosen:
            # From JSON data the client builds text, not bytes: compare as text.
            want = np.array([w.decode() for w in want.ravel()], dtype=np.object_).reshape(2, 3)
        assert_same(got, want)
