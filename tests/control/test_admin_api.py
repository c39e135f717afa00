"""The admin API over HTTP: the token, the actions, and bad requests that change nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlcanary.config import Settings
from mlcanary.registry.versions import ModelRegistry
from tests.serve.conftest import registered_churn, running_server
from tests.serve.test_swap import request_body

TOKEN = "s3cret-token"


def call(url: str, path: str, body: Any = None, token: str | None = TOKEN,
         method: str | None = None) -> tuple[int, Any]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("admin"), 800, seed=4, versions=3)


def test_admin_routes_need_the_token_and_act(home: Path) -> None:
    env = {"MLCANARY_ADMIN_TOKEN": TOKEN, "MLCANARY_MONITOR": "false"}
    with running_server(home, ["churn"], **env) as server:
        url = server.url
        assert call(url, "/admin/models/churn/deployment", token=None)[0] == 401
        status, body = call(url, "/admin/models/churn/deployment", token="wrong")
        assert status == 401 and "Bearer" in body["error"]
        assert call(url, "/admin/models/churn/deployment")[0] == 404  # none deployed yet
        bad = [
            ({"challenger": 9}, "version 9 of 'churn' does not exist"),
            ({"challenger": 2, "strategy": "ab", "weights": [70, 20]}, "summing to 100"),
            ({"challenger": 2, "strategy": "blue-green"}, "'strategy': expected one of canary, ab"),
            ({"challenger": "2"}, "'challenger': expected the version to roll out, an integer"),
            ({"challenger": True}, "'challenger': expected the version to roll out, an integer"),
            ({"strategy": "ab"}, "missing 'challenger'"),
            ({"challenger": 2, "steps": [5, "x"]}, "'steps': expected a list of traffic"),
            ({"version": 2}, "unknown fields ['version']"),
            ([2], "request body: expected an object with fields 'challenger'"),
        ]
        for body, message in bad:
            status, answer = call(url, "/admin/models/churn/deploy", body)
            assert status == 400 and message in answer["error"], (body, answer)
        assert call(url, "/admin/models/churn/deploy", b"{not json")[0] == 400
        assert call(url, "/admin/models/churn/events")[1] == []  # nothing changed
        status, deployed = call(url, "/admin/models/churn/deploy",
                                {"challenger": 2, "strategy": "ab", "weights": [50, 50]})
        assert status == 200 and deployed["weights"] == {"champion": 50.0, "challenger": 50.0}
        status, again = call(url, "/admin/models/churn/deploy", {"challenger": 3})
        assert status == 409 and "promote or roll it back first" in again["error"]
        assert call(url, "/admin/models/churn/pause", {})[1]["status"] == "paused"
        assert call(url, "/admin/models/churn/resume", {})[1]["status"] == "running"
        assert call(url, "/admin/models/churn/explode", {})[0] == 404
        status, promoted = call(url, "/admin/models/churn/promote", {})
        assert status == 200 and promoted["status"] == "promoted"
        status, trail = call(url, "/admin/models/churn/events")
        assert [(e["kind"], e["actor"]) for e in trail] == [
            ("deploy", "admin-api"), ("pause", "admin-api"), ("resume", "admin-api"),
            ("promote", "admin-api"),
        ]
    assert ModelRegistry(Settings(home=home)).alias_version("churn", "champion") == 2


def test_without_a_token_setting_there_is_no_admin_api_and_inference_can_be_guarded(
    home: Path,
) -> None:
    env = {"MLCANARY_INFERENCE_TOKEN": TOKEN, "MLCANARY_MONITOR": "false"}
    with running_server(home, ["churn"], **env) as server:
        assert call(server.url, "/admin/models/churn/deployment")[0] == 404
        import pandas as pd

        from mlcanary.demo import make_churn

        rows: pd.DataFrame = make_churn(2, seed=1).drop(columns="churned")
        body = json.loads(request_body(rows))
        assert call(server.url, "/v2/models/churn/infer", body, token=None)[0] == 401
        assert call(server.url, "/v2/models/churn/infer", body)[0] == 200
        assert call(server.url, "/v2/health/ready", token=None)[0] == 200  # probes stay open
