"""The server over HTTP, with the real tritonclient and plain JSON."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from tests.serve.conftest import Server, running_server
from tests.serve.test_protocol import v2_body

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
    """The same model served by a second process with one runtime forced (without a
    second monitor: the first one watches the shared store)."""
    with running_server(server.home, ["churn"], MLCANARY_RUNTIME=request.param,
                        MLCANARY_MONITOR="false") as running:
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
    made = uuid.UUID(result.get_response()["id"])  # generated when the request has none
    assert made.version == 7 and abs((made.int >> 80) / 1000 - time.time()) < 600
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


def test_bad_requests_over_a_socket(server: Server) -> None:
    """The in-process protocol tests (``test_protocol.py``) cover every bad request; these
    need the real server: a body refused from its Content-Length before it is read, and
    a malformed body read off the wire."""
    for path, body, status, message in [
        ("/v2/models/churn/infer", b"x" * (2**20 + 1), 413, "over the limit"),
        ("/v2/models/churn/infer", b"{not json", 400, "not valid JSON"),
        ("/v1/models/churn:predict", b'{"rows": []}', 400, '{"instances": [...]}'),
    ]:
        got, doc = http(server, path, body, method="POST")
        assert (got, set(doc)) == (status, {"error"}), doc
        assert message in doc["error"], doc


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
