"""Protocol edge cases against the app in this process (no socket, no child process):
every bad request's status and message, 405 with ``Allow``, fuzzed bodies, the binary
extension and the inference service's own contract. ``test_server.py`` keeps the checks
that need a real server (tritonclient over a socket, access logs, early 413)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import InProcess

INTEGER_COLUMNS = {"tenure_months", "support_calls"}
NUMERIC_COLUMNS = {"monthly_charges", "data_usage_gb"}


def post(
    inprocess: InProcess, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    response = inprocess.client.post(
        path, content=body, headers={"Content-Type": "application/json", **(headers or {})})
    return response.status_code, response.json()


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


def error_cases(rows: pd.DataFrame) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    rows = rows.head(3)
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


def test_each_bad_request_gets_its_status_and_a_message(inprocess: InProcess) -> None:
    for label, path, body, headers, status, message in error_cases(inprocess.rows):
        got, doc = post(inprocess, path, body, headers)
        assert (got, set(doc)) == (status, {"error"}), (label, doc)
        assert message in doc["error"], (label, doc["error"])


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/v2/models/churn/infer", {"POST"}),
    ("DELETE", "/v2/models/churn", {"GET", "HEAD"}),
    ("PUT", "/v2/health/ready", {"GET", "HEAD"}),
])
def test_a_wrong_method_is_405_with_the_allowed_ones(
    inprocess: InProcess, method: str, path: str, allowed: set[str]
) -> None:
    response = inprocess.client.request(method, path)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.json() == {"error": f"method {method}: not allowed on '{path}'"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
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
def test_no_body_gives_a_server_error(inprocess: InProcess, body: bytes) -> None:
    for path in ("/v2/models/churn/infer", "/v1/models/churn:predict"):
        status, doc = post(inprocess, path, body)
        assert status < 500, (body, doc)
        assert set(doc) == {"error"} or status == 200




def test_binary_tensors_from_tritonclient_in_process(inprocess: InProcess) -> None:
    """tritonclient's own encoder and decoder, over the app without a socket."""
    import tritonclient.http as triton

    from tests.serve.test_server import triton_inputs

    rows = inprocess.rows.head(7)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True)]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        triton_inputs(rows, binary=True), outputs=outputs, request_id="b-1")
    response = inprocess.client.post(
        "/v2/models/churn/infer", content=body,
        headers={"Content-Type": "application/octet-stream",
                 "Inference-Header-Content-Length": str(json_size)})
    assert response.status_code == 200, response.text
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers["Inference-Header-Content-Length"]))
    np.testing.assert_allclose(result.as_numpy("probabilities"),
                               inprocess.pipeline.predict_proba(rows), atol=1e-5)
    assert result.get_response()["id"] == "b-1"


def run(inprocess: InProcess, request: Any) -> Any:
    """``InferenceService.infer`` in the app's event loop (where its batchers run)."""
    return inprocess.client.portal.call(inprocess.service.infer, request)


def inference(inprocess: InProcess, rows: pd.DataFrame, **fields: Any) -> Any:
    from mlcanary.serve.service import Inference
    from mlcanary.serve.validation import tensors_from_frame

    signature = inprocess.service.model("churn").signature
    return Inference("churn", tensors_from_frame(rows, signature), **fields)


def test_the_service_answers_without_any_transport(inprocess: InProcess) -> None:
    rows = inprocess.rows.iloc[10:60]
    answer = run(inprocess, inference(inprocess, rows, id="s-1"))
    assert (answer.model, answer.version, answer.id, answer.variant) == ("churn", 1, "s-1",
                                                                         "champion")
    np.testing.assert_allclose(answer.prediction.proba, inprocess.pipeline.predict_proba(rows),
                               atol=1e-5)
    assert [t.name for t in answer.outputs()] == ["predict", "probabilities"]
    assert run(inprocess, inference(inprocess, rows.head(1))).id  # one made when none is given
    assert run(inprocess, inference(inprocess, rows.head(1), version="1")).version == 1


def test_the_service_counts_refusals_as_the_clients_not_the_models(inprocess: InProcess) -> None:
    from mlcanary.errors import InvalidInput, NotFound
    from mlcanary.serve.tensors import Tensor

    service = inprocess.service
    inprocess.client.portal.call(_drained, service)
    rows = inprocess.rows.head(2)
    good = inference(inprocess, rows)
    bad = inference(inprocess, rows)
    bad.inputs = [t if t.name != "plan" else Tensor("plan", "BYTES", [2],
                                                    np.array([b"gold", b"basic"], dtype=object))
                  for t in good.inputs]
    run(inprocess, good)
    with pytest.raises(InvalidInput, match="unseen category 'gold'"):
        run(inprocess, bad)
    with pytest.raises(NotFound, match="version 9 is not loaded"):
        run(inprocess, inference(inprocess, rows, version="9"))
    counts = inprocess.client.portal.call(_drained, service)
    champion = counts[("churn", "champion", 1, 0)]
    assert (champion.requests, champion.errors) == (2, 0)  # the unknown version never routed
    assert len(counts) == 1


async def _drained(service: Any) -> Any:
    return service.counter.drain()
