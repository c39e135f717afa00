"""The server over HTTP, with the real tritonclient and plain JSON."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import Server, running_server

INTEGER_COLUMNS = {"tenure_months", "support_calls"}
NUMERIC_COLUMNS = {"monthly_charges", "data_usage_gb"}


def http(
    server: Server,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request; the answer is read even when the server answers before taking the whole
    body (413 on an oversized Content-Length) and the rest of the upload breaks the pipe."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    where = urllib.parse.urlsplit(server.url)
    connection = HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    try:
        connection.putrequest(method or ("GET" if body is None else "POST"), path)
        for key, value in headers.items():
            connection.putheader(key, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if body is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def triton_inputs(rows: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in rows.columns:
        column = rows[name]
        if name in INTEGER_COLUMNS:
            data, datatype = column.to_numpy(dtype=np.int64), "INT64"
        elif name in NUMERIC_COLUMNS:
            data, datatype = column.to_numpy(dtype=np.float64), "FP64"
        else:
            data = np.array([str(v).encode() for v in column], dtype=np.object_)
            datatype = "BYTES"
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(data, binary_data=binary)
        inputs.append(tensor)
    return inputs


TOLERANCE = {"native": 1e-6, "onnx": 1e-5}
"""Largest probability difference from the in-memory pipeline, per forced runtime."""


@pytest.fixture(scope="module", params=sorted(TOLERANCE))
def forced(request: pytest.FixtureRequest, server: Server) -> Iterator[tuple[str, Server]]:
    """The same model served by a second process with one runtime forced."""
    with running_server(server.home, ["churn"], MLCANARY_RUNTIME=request.param) as running:
        port = int(running.url.rsplit(":", 1)[1])
        yield request.param, dataclasses.replace(server, url=running.url, port=port)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_gets_the_pipeline_probabilities(
    forced: tuple[str, Server], binary: bool
) -> None:
    runtime, server = forced
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.get_model_metadata("churn")["parameters"]["runtime"] == runtime
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("churn")
    rows = server.rows.head(200)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "probabilities")
    ]
    result = client.infer("churn", triton_inputs(rows, binary), outputs=outputs, request_id="r-1")
    expected = server.pipeline.predict_proba(rows)
    got = result.as_numpy("probabilities")
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[runtime])
    np.testing.assert_array_equal(result.as_numpy("predict"), server.pipeline.predict(rows))
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["model_version"] == "1"


def test_tritonclient_default_outputs_and_metadata(server: Server) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    result = client.infer("churn", triton_inputs(server.rows.head(3), True))
    assert result.as_numpy("probabilities").shape == (3, 2)
    assert result.get_response()["id"]  # generated when the request has none
    meta = client.get_model_metadata("churn")
    assert [i["name"] for i in meta["inputs"]] == list(server.rows.columns)
    assert {o["name"] for o in meta["outputs"]} == {"predict", "probabilities"}
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_v1_instances_as_objects_and_lists(server: Server) -> None:
    rows = server.rows.head(5)
    objects = json.loads(rows.to_json(orient="records"))
    status, doc = http(
        server, "/v1/models/churn:predict", json.dumps({"instances": objects}).encode()
    )
    assert status == 200, doc
    np.testing.assert_allclose(doc["probabilities"], server.pipeline.predict_proba(rows), atol=1e-6)
    assert doc["classes"] == [0, 1] and doc["model_version"] == "1"
    lists = json.loads(rows.to_json(orient="values"))
    status, again = http(
        server, "/v1/models/churn:predict", json.dumps({"instances": lists}).encode()
    )
    assert status == 200 and again["predictions"] == doc["predictions"]


def v2_body(rows: pd.DataFrame, **changes: Any) -> bytes:
    inputs = []
    for name in rows.columns:
        if name in INTEGER_COLUMNS:
            inputs.append(
                {
                    "name": name,
                    "datatype": "INT64",
                    "shape": [len(rows)],
                    "data": rows[name].tolist(),
                }
            )
        elif name in NUMERIC_COLUMNS:
            data = [None if pd.isna(v) else v for v in rows[name]]
            inputs.append({"name": name, "datatype": "FP64", "shape": [len(rows)], "data": data})
        else:
            inputs.append(
                {
                    "name": name,
                    "datatype": "BYTES",
                    "shape": [len(rows)],
                    "data": rows[name].astype(str).tolist(),
                }
            )
    document: dict[str, Any] = {"inputs": inputs}
    for name, change in changes.items():
        if change is None:
            document["inputs"] = [i for i in inputs if i["name"] != name]
        else:
            next(i for i in inputs if i["name"] == name).update(change)
    return json.dumps(document).encode()


def error_cases(server: Server) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    rows = server.rows.head(3)
    good = v2_body(rows)
    return [
        ("unknown model", "/v2/models/nope/infer", good, {}, 404, "model 'nope': not served here"),
        (
            "unknown version",
            "/v2/models/churn/versions/7/infer",
            good,
            {},
            404,
            "version 7 is not loaded",
        ),
        ("malformed json", "/v2/models/churn/infer", b"{not json", {}, 400, "not valid JSON"),
        (
            "missing column",
            "/v2/models/churn/infer",
            v2_body(rows, plan=None),
            {},
            400,
            "missing columns ['plan']",
        ),
        (
            "unknown column",
            "/v2/models/churn/infer",
            good.replace(b'"name": "plan"', b'"name": "plann"'),
            {},
            400,
            "['plann']: not columns of this model",
        ),
        (
            "wrong datatype",
            "/v2/models/churn/infer",
            v2_body(rows, monthly_charges={"datatype": "BYTES", "data": ["a", "b", "c"]}),
            {},
            400,
            "input 'monthly_charges': expected FP64 (or another numeric type) with shape [n], "
            "got BYTES",
        ),
        (
            "inconsistent shapes",
            "/v2/models/churn/infer",
            v2_body(rows, tenure_months={"shape": [2], "data": [1, 2]}),
            {},
            400,
            "same number of rows",
        ),
        (
            "wrong shape",
            "/v2/models/churn/infer",
            v2_body(rows, tenure_months={"shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}),
            {},
            400,
            "shape [3, 2]",
        ),
        (
            "nan where not nullable",
            "/v2/models/churn/infer",
            v2_body(rows, monthly_charges={"data": [1.0, None, 2.0]}),
            {},
            400,
            "missing value at row 1",
        ),
        (
            "unseen category",
            "/v2/models/churn/infer",
            v2_body(rows, plan={"data": ["basic", "gold", "plus"]}),
            {},
            400,
            "unseen category 'gold'",
        ),
        (
            "wrong content type",
            "/v2/models/churn/infer",
            good,
            {"Content-Type": "text/plain"},
            415,
            "Content-Type: expected application/json",
        ),
        ("body too large", "/v2/models/churn/infer", b"x" * (2**20 + 1), {}, 413, "over the limit"),
        ("unknown route", "/v2/nowhere", b"", {}, 404, "not found"),
        (
            "bad v1 body",
            "/v1/models/churn:predict",
            b'{"rows": []}',
            {},
            400,
            '{"instances": [...]}',
        ),
        (
            "bad header length",
            "/v2/models/churn/infer",
            good,
            {"Inference-Header-Content-Length": "x"},
            400,
            "Inference-Header-Content-Length",
        ),
    ]


def test_each_bad_request_gets_its_status_and_a_message(server: Server) -> None:
    for label, path, body, headers, status, message in error_cases(server):
        got, doc = http(server, path, body if body else None, headers, method="POST")
        assert (got, set(doc)) == (status, {"error"}), (label, doc)
        assert message in doc["error"], (label, doc["error"])


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/v2/models/churn/infer", {"POST"}),
    ("DELETE", "/v2/models/churn", {"GET", "HEAD"}),
    ("PUT", "/v2/health/ready", {"GET", "HEAD"}),
])
def test_a_wrong_method_is_405_with_the_allowed_ones(
    server: Server, method: str, path: str, allowed: set[str]
) -> None:
    request = urllib.request.Request(f"{server.url}{path}", method=method)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 405
    assert {m.strip() for m in caught.value.headers["Allow"].split(",")} == allowed
    assert json.loads(caught.value.read()) == {
        "error": f"method {method}: not allowed on '{path}'"}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "inputs",
                            "name",
                            "datatype",
                            "shape",
                            "data",
                            "id",
                            "outputs",
                            "parameters",
                            "plan",
                        ]
                    ),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=20,
        ).map(lambda doc: json.dumps(doc).encode()),
    )
)
def test_no_body_gives_a_server_error(server: Server, body: bytes) -> None:
    for path in ("/v2/models/churn/infer", "/v1/models/churn:predict"):
        status, doc = http(server, path, body, method="POST")
        assert status < 500, (body, doc)
        assert set(doc) == {"error"} or status == 200


def test_metrics_and_json_access_log(server: Server) -> None:
    body = v2_body(server.rows.head(2))
    tagged = json.dumps({**json.loads(body), "id": "r-log"}).encode()
    assert http(server, "/v2/models/churn/infer", tagged, method="POST")[0] == 200
    http(server, "/v2/models/nope/infer", body, method="POST")
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert (
        'mlcanary_requests_total{endpoint="v2_infer",model="churn",status="200",version="1"}'
        in text
    )
    assert (
        'mlcanary_requests_total{endpoint="v2_infer",model="nope",status="404",version=""}' in text
    )
    for name in (
        "mlcanary_request_seconds_bucket",
        "mlcanary_batch_rows_bucket",
        "mlcanary_queue_seconds_bucket",
        "mlcanary_requests_in_flight",
        'mlcanary_model_load_seconds{model="churn",version="1"}',
    ):
        assert name in text
    lines = [
        json.loads(line)
        for line in server.log.read_text().splitlines()
        if line.startswith("{")
    ]
    access = [line for line in lines if line["logger"] == "mlcanary.access"]
    assert any(line["request_id"] == "r-log" and line["status"] == 200 for line in access)
    assert {"model", "version", "latency_ms", "endpoint"} <= set(access[-1])
