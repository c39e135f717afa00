"""The server's own OpenAPI document, fuzzed with schemathesis against the real server.

Every operation the document lists (the admin API included: the server runs with an admin
token) gets generated requests; each answer must be no 5xx, a documented status with the
documented content type, and a body that conforms to the documented schema.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.serve.conftest import registered_churn, running_server

TOKEN = "s3cret-admin"
CONFIG = schemathesis.Config.from_dict({
  "auth": {"openapi": {"bearer": {"bearer": TOKEN}}},
  "generation": {"allow-extra-parameters": False},
  "operations": [{
    "include-path-regex": "/infer$|:predict$|/feedback$|/deploy$",
    "checks": {"positive_data_acceptance": {"enabled": False}},
}]})
"""The token goes with every request the document says needs it (so a negative case may
drop it); unknown query parameters are ignored, as by most HTTP APIs, so none are made up.
Whether a schema-valid body is acceptable there depends on the served model (its columns,
its classes, its versions), which a generic document cannot say; every other check still
holds there, and every other operation must accept every schema-valid request."""
EXAMPLES = 25
"""Generated requests per operation and mode (one server; a few seconds in all)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("openapi")
    home = registered_churn(tmp, 400, seed=8)
    with running_server(home, ["churn"], MLCANARY_ADMIN_TOKEN=TOKEN,
                        MLCANARY_MONITOR="false") as running:
        yield running.url


@pytest.fixture(scope="module")
def api(served: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served}/openapi.json", config=CONFIG)


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["content-type"], response.read()


def test_the_document_is_openapi_3_1_and_lists_every_route(served: str) -> None:
    status, kind, body = fetch(f"{served}/openapi.json")
    document = json.loads(body)
    assert (status, kind, document["openapi"]) == (200, "application/json", "3.1.0")
    paths = set(document["paths"])
    assert {"/v2/models/{name}/infer", "/v1/models/{name}:predict", "/v2/models/{name}/feedback",
            "/admin/models/{name}/deploy", "/admin/models/{name}/promote"} <= paths
    deploy = document["paths"]["/admin/models/{name}/deploy"]["post"]
    assert deploy["security"] == [{"bearer": []}]
    fields = document["components"]["schemas"]["DeployBody"]["properties"]
    assert fields["strategy"]["enum"] == ["canary", "ab", "shadow"]


def test_the_docs_page_is_served_from_the_installed_package(served: str) -> None:
    status, kind, page = fetch(f"{served}/docs")
    assert status == 200 and kind.startswith("text/html")
    assert b"/openapi.json" in page and b"https://" not in page  # no CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        status, _, body = fetch(f"{served}/docs/static/{asset}")
        assert status == 200 and len(body) > 10_000


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE,
                                  schemathesis.GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    api: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20
    tried = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate()

        try:
            answers_as_documented()
        except Unsatisfiable:  # nothing to break: no parameters, no body
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
            continue
        tried += 1
    breakable = [o for o in operations if o.definition.raw.get("requestBody") or any(
        p["schema"]["type"] != "string" for p in o.definition.raw.get("parameters", []))]
    assert tried >= len(operations if mode == schemathesis.GenerationMode.POSITIVE else breakable)


def test_the_admin_routes_are_documented_only_with_an_admin_token(tmp_path: Path) -> None:
    from mlcanary.serve.openapi import openapi_document

    plain = openapi_document(admin=False, inference_token=False)
    assert not [p for p in plain["paths"] if p.startswith("/admin")]
    assert "securitySchemes" not in plain["components"]
    guarded = openapi_document(admin=False, inference_token=True)
    infer = guarded["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["security"] == [{"bearer": []}] and "401" in infer["responses"]
