"""A real server watches its own traffic: signals over HTTP, in Prometheus, in the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcanary.demo import make_churn
from tests.conftest import cli_in_process, cli_runner
from tests.serve.conftest import registered_churn, running_server
from tests.serve.test_prediction_log import feedback, infer
from tests.waiting import wait_until

ENV = {
    "MLCANARY_LOG_FLUSH_SECONDS": "0.2",
    "MLCANARY_MONITOR_SECONDS": "0.3",
    "MLCANARY_WINDOW_ROWS": "400",
    "MLCANARY_WINDOW_SECONDS": "3600",
}


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read()
        return json.loads(body) if resp.headers.get_content_type() == "application/json" else body




@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("monitoring"), 3000, seed=21)


def send(url: str, rows: pd.DataFrame, per_request: int = 20) -> list[tuple[str, int]]:
    """Send ``rows`` in requests; return (id, rows) per request."""
    out = []
    for begin in range(0, len(rows), per_request):
        answer = infer(url, rows.iloc[begin : begin + per_request])
        out.append((answer["id"], len(rows.iloc[begin : begin + per_request])))
    return out


@pytest.mark.slow
def test_the_server_flags_drift_and_performance_and_exports_them(home: Path) -> None:
    with running_server(home, ["churn"], **ENV) as running:
        url = running.url
        clean = make_churn(400, seed=22)
        ids = send(url, clean.drop(columns="churned"))
        first = wait_until(lambda: get(f"{url}/monitor/churn")["windows"])
        assert first[0]["rows"] == 400 and first[0]["dataset_drift"] is False
        shifted = make_churn(400, seed=23).drop(columns="churned")
        shifted["monthly_charges"] = shifted["monthly_charges"] * 2
        send(url, shifted)
        windows = wait_until(
            lambda: [w for w in get(f"{url}/monitor/churn?last=5")["windows"] if w["dataset_drift"]]
        )
        assert "monthly_charges" in windows[0]["drifted_columns"]
        metrics = get(f"{url}/metrics").decode()
        assert 'mlcanary_drift_dataset{model="churn",variant="champion",version="1"} 1.0' in metrics
        assert 'mlcanary_feature_drift{feature="monthly_charges",model="churn"} 1.0' in metrics

        # Labels for the clean traffic: a performance signal against the CV baseline.
        labels = clean["churned"].tolist()
        items, at = [], 0
        for request_id, n in ids:
            items.append({"id": request_id, "label": labels[at : at + n]})
            at += n
        status, result = feedback(url, items)
        assert status == 200 and result["matched"] == len(ids)
        document = wait_until(lambda: get(f"{url}/monitor/churn")["performance"] and
                            get(f"{url}/monitor/churn"))
        performance = document["performance"]
        assert performance["metric"] == "accuracy" and performance["n"] == 400
        assert performance["ci_low"] <= performance["value"] <= performance["ci_high"]
        # Gauges come from the store, read at most every 5 s.
        wait_until(lambda: 'mlcanary_performance_degraded{model="churn"'
                 in get(f"{url}/metrics").decode())

        # The CLI reads the same store: tables, and one JSON document.
        cli = cli_runner(home)
        shown = cli("status", "churn")
        assert shown.code == 0, shown.stderr
        assert "DRIFT" in shown.stdout and "monthly_charges" in shown.stdout
        assert "accuracy" in shown.stdout
        as_json = cli("status", "churn", "--json")
        assert json.loads(as_json.stdout)["windows"][-1]["tests"]
        written = cli("report", "churn", "--out", str(home.parent / "drift.html"))
        assert written.code == 0, written.stderr
        assert "monthly_charges (drift)" in (home.parent / "drift.html").read_text()


def failure(url: str) -> tuple[int, str]:
    try:
        urllib.request.urlopen(url, timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]
    raise AssertionError(f"expected an error from {url}")


def test_monitor_route_errors_are_clear(home: Path) -> None:
    with running_server(home, ["churn"], **ENV) as running:
        status, message = failure(f"{running.url}/monitor/nope")
        assert status == 404 and "'nope'" in message
        status, message = failure(f"{running.url}/monitor/churn?last=zero")
        assert status == 400 and "query parameter 'last'" in message


def test_status_of_an_unknown_model_is_one_line_and_exit_2(home: Path) -> None:
    result = cli_runner(home)("status", "nope")
    assert result.code == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_records_dropped_by_a_full_buffer_are_counted_in_status(home: Path) -> None:
    env = {"MLCANARY_LOG_BUFFER_RECORDS": "1", "MLCANARY_LOG_FLUSH_SECONDS": "2",
           "MLCANARY_MONITOR": "false"}
    with running_server(home, ["churn"], **env) as running:
        rows = make_churn(10, seed=24).drop(columns="churned")
        send(running.url, rows, per_request=1)  # one fits in the buffer until the flush
        metrics = get(f"{running.url}/metrics").decode()
        assert 'mlcanary_prediction_log_dropped_total{model="churn"} 9.0' in metrics
        document = wait_until(
            lambda: (d := json.loads(cli_in_process(home)("status", "churn", "--json").stdout))
            and d["predictions_dropped"] == 9 and d
        )
        assert document["predictions_written_by_servers"] >= 1
        shown = cli_runner(home)("status", "churn")
        assert "9 dropped" in shown.stdout
